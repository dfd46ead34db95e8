#include "keel/train/train.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "keel/core/sha256.h"
#include "keel/core/thread_pool.h"
#include "keel/core/util.h"
#include "keel/data/csv.h"
#include "keel/data/pipeline.h"
#include "keel/data/profile.h"
#include "keel/model/formats.h"
#include "keel/monitor/reference.h"
#include "keel/train/linear_trainer.h"
#include "keel/train/xgboost_trainer.h"
#include "src/train/record_internal.h"

namespace keel::train {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

enum class TaskKind { kBinary, kMulticlass, kRegression };

const char* TaskKindName(TaskKind t) {
  return t == TaskKind::kBinary       ? "binary"
         : t == TaskKind::kMulticlass ? "multiclass"
                                      : "regression";
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Shortest text that reads back as the same double ("0.2", not 0.2000...01).
std::string FormatNumber(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Labels of the target column: task, class names (index = label value) and
// one float label per row (NaN when the target is missing).
struct Labels {
  TaskKind task = TaskKind::kRegression;
  std::vector<std::string> classes;
  std::vector<float> values;
};

Result<Labels> MakeLabels(const data::Column& col, const TrainSpec& spec) {
  Labels out;
  const size_t n = col.size();
  out.values.assign(n, std::nanf(""));
  std::string task = Lower(spec.task);
  if (task != "auto" && task != "binary" && task != "multiclass" && task != "regression") {
    return InvalidArgument("--task must be auto, binary, multiclass or regression, not '" +
                           spec.task + "'");
  }
  // Distinct non-missing values as text.
  std::set<std::string> distinct;
  for (size_t i = 0; i < n && distinct.size() <= 1000; ++i) {
    if (!col.IsMissing(i)) distinct.insert(col.ValueText(i));
  }
  if (distinct.size() < 2) {
    return InvalidArgument("target column '" + col.name() + "' has " +
                           std::to_string(distinct.size()) + " distinct value(s); need at least 2");
  }
  if (task == "auto") {
    if (col.type() == data::ColumnType::kNumeric) {
      bool zero_one = distinct.size() == 2;
      for (const auto& v : distinct) zero_one = zero_one && (v == "0" || v == "1");
      task = zero_one ? "binary" : "regression";
    } else {
      task = distinct.size() == 2 ? "binary" : "multiclass";
    }
  }
  if (task == "regression") {
    if (col.type() == data::ColumnType::kCategorical) {
      return InvalidArgument("target column '" + col.name() +
                             "' is categorical; regression needs numbers");
    }
    out.task = TaskKind::kRegression;
    for (size_t i = 0; i < n; ++i) {
      if (!col.IsMissing(i)) out.values[i] = static_cast<float>(col.values()[i]);
    }
    return out;
  }
  out.classes.assign(distinct.begin(), distinct.end());  // sorted
  if (task == "binary") {
    out.task = TaskKind::kBinary;
    if (out.classes.size() != 2) {
      return InvalidArgument("target column '" + col.name() + "' has " +
                             std::to_string(out.classes.size()) +
                             " classes; binary needs exactly 2 (use --task multiclass)");
    }
    // The positive class: --positive-class, else yes/true/1, else the second
    // in sorted order.
    std::string positive = spec.positive_class;
    if (positive.empty()) {
      for (const char* p : {"yes", "Yes", "YES", "true", "True", "TRUE", "1"}) {
        if (distinct.count(p)) positive = p;
      }
    }
    if (positive.empty()) positive = out.classes[1];
    if (!distinct.count(positive)) {
      return InvalidArgument("--positive-class '" + positive + "' is not a value of '" +
                             col.name() + "'");
    }
    if (out.classes[1] != positive) std::swap(out.classes[0], out.classes[1]);
  } else {
    out.task = TaskKind::kMulticlass;
    if (out.classes.size() > 1000) {
      return InvalidArgument("target column '" + col.name() + "' has more than 1000 classes");
    }
  }
  for (const auto& c : out.classes) {
    if (!IsValidUtf8(c)) {
      return InvalidArgument("target column '" + col.name() + "': a value is not valid UTF-8 text");
    }
  }
  std::map<std::string, float> index;
  for (size_t i = 0; i < out.classes.size(); ++i) index[out.classes[i]] = static_cast<float>(i);
  for (size_t i = 0; i < n; ++i) {
    if (!col.IsMissing(i)) out.values[i] = index.at(col.ValueText(i));
  }
  return out;
}

// "key=value" params with keel's spellings mapped to XGBoost's.
struct XgbParams {
  int rounds = 100;
  std::vector<std::pair<std::string, std::string>> booster;
};

Result<XgbParams> MakeXgbParams(const TrainSpec& spec, TaskKind task, size_t classes, bool linear) {
  XgbParams p;
  std::map<std::string, std::string> kv;
  for (const auto& [k, v] : spec.params) {
    std::string key = k;
    if (key == "learning_rate") key = "eta";
    if (key == "n_estimators" || key == "num_boost_round" || key == "num_round") {
      try {
        size_t used = 0;
        p.rounds = std::stoi(v, &used);
        if (used != v.size() || p.rounds <= 0 || p.rounds > 100000) throw std::out_of_range(v);
      } catch (...) {
        return InvalidArgument("--param " + k + "=" + v + ": expected an integer in [1, 100000]");
      }
      continue;
    }
    if (key == "random_state") key = "seed";
    kv[key] = v;
  }
  auto set_default = [&](const std::string& k, const std::string& v) { kv.emplace(k, v); };
  if (task == TaskKind::kBinary) {
    set_default("objective", "binary:logistic");
    set_default("eval_metric", "auc");
  } else if (task == TaskKind::kMulticlass) {
    set_default("objective", "multi:softprob");
    set_default("eval_metric", "mlogloss");
    kv["num_class"] = std::to_string(classes);
  } else {
    set_default("objective", "reg:squarederror");
    set_default("eval_metric", "rmse");
  }
  // Metrics and serving read probabilities for classification.
  const std::string& objective = kv["objective"];
  if (task == TaskKind::kBinary && objective != "binary:logistic" && objective != "reg:logistic") {
    return InvalidArgument("objective " + objective +
                           " does not give probabilities; binary targets take binary:logistic");
  }
  if (task == TaskKind::kMulticlass && objective != "multi:softprob") {
    return InvalidArgument("objective " + objective +
                           " does not give probabilities; multiclass targets take multi:softprob");
  }
  if (linear) {
    kv["booster"] = "gblinear";
  } else {
    set_default("tree_method", "hist");
  }
  set_default("seed", std::to_string(spec.seed));
  set_default("nthread", std::to_string(std::max(1u, std::thread::hardware_concurrency())));
  // Warnings on, so unknown parameters are reported (TrainXgboost turns
  // "Parameters: { ... } are not used" into an error).
  set_default("verbosity", "1");
  set_default("validate_parameters", "1");
  for (auto& [k, v] : kv) p.booster.emplace_back(k, v);
  return p;
}

Result<std::string> GitOutput(const std::string& args) {
  const std::string cmd = "git " + args + " 2>/dev/null";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return Unavailable("git not available");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int rc = ::pclose(f);
  if (rc != 0) return Unavailable("git failed");
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string SignatureType(data::ColumnType t) {
  switch (t) {
    case data::ColumnType::kNumeric:
      return "double";
    case data::ColumnType::kBoolean:
      return "boolean";
    case data::ColumnType::kCategorical:
      return "string";
  }
  return "string";
}

std::string JoinComma(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// The path a run records for a data file: the label when set, else the
// absolute path (so --rerun works from any directory).
std::string DataLabel(const std::string& path, const std::string& label) {
  if (!label.empty()) return label;
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

Result<DataVersion> VersionOf(const std::string& role, const std::string& path,
                              const data::Table& table) {
  DataVersion v;
  v.role = role;
  v.path = path;
  std::error_code ec;
  v.bytes = fs::file_size(path, ec);
  KEEL_ASSIGN_OR_RETURN(v.sha256, Sha256File(path));
  v.rows = table.num_rows();
  v.columns = table.num_columns();
  return v;
}

// Adds the model's predictions on held-out rows and its validation metrics to
// the drift reference (ReferenceProfile::prediction_column, ::performance).
void AddPredictionReference(monitor::ReferenceProfile& ref, const model::PackageInfo& info,
                            TaskKind task, int outputs, const std::vector<float>& pred,
                            const std::vector<Metric>& metrics) {
  for (const Metric& m : metrics) {
    if (std::isfinite(m.value)) ref.performance.emplace_back(m.name, m.value);
  }
  // The output's name, unless a column has it (a regression model's output is
  // named after its target by default): then "<name>_prediction".
  std::string name = info.output_name;
  if (ref.Find(name) != nullptr) name += "_prediction";
  if (pred.empty() || outputs < 1 || ref.Find(name) != nullptr) return;
  monitor::ReferenceColumn c;
  c.name = name;
  if (task == TaskKind::kMulticlass) {
    c.kind = monitor::ColumnKind::kCategorical;
    const size_t k = static_cast<size_t>(outputs);
    for (size_t row = 0; row + k <= pred.size(); row += k) {
      const size_t best = static_cast<size_t>(
          std::max_element(pred.begin() + static_cast<std::ptrdiff_t>(row),
                           pred.begin() + static_cast<std::ptrdiff_t>(row + k)) -
          (pred.begin() + static_cast<std::ptrdiff_t>(row)));
      c.categorical.Add(best < info.classes.size() ? info.classes[best] : std::to_string(best));
    }
  } else {
    const std::vector<double> values(pred.begin(), pred.end());
    c.numeric = monitor::NumericSample::FromValues(values);
    if (!c.numeric.sorted.empty()) {
      Result<monitor::QuantileBins> bins = monitor::FitQuantileBins(c.numeric.sorted, ref.bins);
      if (!bins.ok()) return;
      c.bins = std::move(bins).value();
    }
  }
  ref.columns.push_back(std::move(c));
  ref.prediction_column = name;
}

}  // namespace

static Result<TrainedModel> TrainModelUnchecked(const TrainSpec& spec,
                                                const TrainProgress& progress);

Result<TrainedModel> TrainModel(const TrainSpec& spec, const TrainProgress& progress) {
  // Third-party code (JSON, YAML, libxgboost wrappers) may throw: a training
  // job ends with a Status, never with an exception.
  try {
    return TrainModelUnchecked(spec, progress);
  } catch (const std::exception& e) {
    return Internal(std::string("training failed: ") + e.what());
  }
}

static Result<TrainedModel> TrainModelUnchecked(const TrainSpec& spec,
                                                const TrainProgress& progress) {
  const auto start = Clock::now();
  auto status = [&](const std::string& s) {
    if (progress.on_status) progress.on_status(s);
  };
  auto cancelled = [&] { return progress.cancel != nullptr && progress.cancel->load(); };
  if (spec.data_path.empty()) return InvalidArgument("--data is required");
  if (spec.target.empty()) return InvalidArgument("--target is required");
  if (!IsValidUtf8(spec.target)) return InvalidArgument("--target is not valid UTF-8 text");
  const bool xgb = spec.model == "xgboost" || spec.model == "xgboost-linear";
  if (!xgb && spec.model != "linear" && spec.model != "logistic") {
    return InvalidArgument("--model must be xgboost, xgboost-linear, linear or logistic, not '" +
                           spec.model + "'");
  }
  if (spec.categorical != "onehot" && spec.categorical != "native") {
    return InvalidArgument("--categorical must be onehot or native, not '" + spec.categorical +
                           "'");
  }
  if (spec.categorical == "native" && spec.model != "xgboost") {
    return InvalidArgument("--categorical native needs --model xgboost");
  }
  if (!(spec.validation_fraction > 0 && spec.validation_fraction < 1) &&
      spec.validation_path.empty()) {
    return InvalidArgument("--validation-fraction must be between 0 and 1");
  }

  data::CsvOptions csv;
  for (const auto& [col, type] : spec.column_types) {
    auto t = data::ColumnTypeFromName(type);
    if (!t) {
      return InvalidArgument("--column-type " + col + "=" + type +
                             ": type must be numeric, categorical or boolean");
    }
    csv.types[col] = *t;
  }
  status("reading " + spec.data_path);
  csv.reader.progress = [&](uint64_t done, uint64_t total) {
    if (total > 0) {
      status("reading " + spec.data_path + " " + std::to_string(done * 100 / total) + "%");
    }
  };
  KEEL_ASSIGN_OR_RETURN(data::Table table, data::ReadCsvTable(spec.data_path, csv));
  if (table.ColumnIndex(spec.target) < 0) {
    return InvalidArgument(spec.data_path + ": no column named '" + spec.target +
                           "' (columns: " + JoinComma(table.ColumnNames()) + ")");
  }
  std::vector<std::string> features;
  for (const auto& name : spec.drop_columns) {
    if (table.ColumnIndex(name) < 0) {
      return InvalidArgument("--drop " + name + ": no such column in " + spec.data_path);
    }
  }
  for (const auto& name : table.ColumnNames()) {
    if (name == spec.target) continue;
    if (std::find(spec.drop_columns.begin(), spec.drop_columns.end(), name) !=
        spec.drop_columns.end()) {
      continue;
    }
    features.push_back(name);
  }
  if (features.empty()) return InvalidArgument(spec.data_path + ": no feature columns left");

  std::optional<data::Table> valid_table;
  if (!spec.validation_path.empty()) {
    status("reading " + spec.validation_path);
    KEEL_ASSIGN_OR_RETURN(valid_table, data::ReadCsvTable(spec.validation_path, csv));
    if (valid_table->ColumnIndex(spec.target) < 0) {
      return InvalidArgument(spec.validation_path + ": no column named '" + spec.target + "'");
    }
  }

  // Labels and the split. Rows without a target are left out.
  const data::Column& target_col = *table.FindColumn(spec.target);
  KEEL_ASSIGN_OR_RETURN(Labels labels, MakeLabels(target_col, spec));
  std::vector<uint32_t> labeled;
  for (uint32_t i = 0; i < labels.values.size(); ++i) {
    if (!std::isnan(labels.values[i])) labeled.push_back(i);
  }
  std::vector<uint32_t> train_rows, valid_rows;
  if (valid_table) {
    train_rows = labeled;
  } else {
    data::RowSplit split =
        data::SplitRows(labeled.size(), spec.validation_fraction, spec.seed, nullptr);
    for (uint32_t i : split.train) train_rows.push_back(labeled[i]);
    for (uint32_t i : split.validation) valid_rows.push_back(labeled[i]);
    std::sort(train_rows.begin(), train_rows.end());
    std::sort(valid_rows.begin(), valid_rows.end());
  }
  if (train_rows.size() < 2) return InvalidArgument("fewer than 2 labeled training rows");

  KEEL_ASSIGN_OR_RETURN(data::Table train_table, table.Take(train_rows));
  data::PipelineOptions popt;
  popt.encoding = spec.categorical == "native" ? data::CategoricalEncoding::kNative
                                               : data::CategoricalEncoding::kOneHot;
  KEEL_ASSIGN_OR_RETURN(data::FeaturePipeline pipeline,
                        data::FeaturePipeline::Fit(train_table, features, popt));
  const size_t nf = pipeline.num_features();

  auto encode = [&](const data::Table& t, const std::vector<uint32_t>& rows,
                    std::vector<float>& x) -> Status {
    x.assign(rows.size() * nf, 0.0f);
    return pipeline.EncodeRows(t, rows, x.data());
  };
  std::vector<float> x_train, x_valid, y_train, y_valid;
  KEEL_RETURN_IF_ERROR(encode(table, train_rows, x_train));
  for (uint32_t r : train_rows) y_train.push_back(labels.values[r]);
  if (valid_table) {
    const data::Column& vt = *valid_table->FindColumn(spec.target);
    std::map<std::string, float> index;
    for (size_t i = 0; i < labels.classes.size(); ++i)
      index[labels.classes[i]] = static_cast<float>(i);
    for (uint32_t i = 0; i < vt.size(); ++i) {
      if (vt.IsMissing(i)) continue;
      if (labels.task == TaskKind::kRegression) {
        if (vt.type() == data::ColumnType::kCategorical) {
          return InvalidArgument(spec.validation_path + ": target is not numeric");
        }
        y_valid.push_back(static_cast<float>(vt.values()[i]));
      } else {
        auto it = index.find(vt.ValueText(i));
        if (it == index.end()) {
          return InvalidArgument(spec.validation_path + ": row " + std::to_string(i + 2) +
                                 ": target value '" + vt.ValueText(i) +
                                 "' does not occur in the training data");
        }
        y_valid.push_back(it->second);
      }
      valid_rows.push_back(i);
    }
    KEEL_RETURN_IF_ERROR(encode(*valid_table, valid_rows, x_valid));
  } else {
    KEEL_RETURN_IF_ERROR(encode(table, valid_rows, x_valid));
    for (uint32_t r : valid_rows) y_valid.push_back(labels.values[r]);
  }
  if (cancelled()) return Unavailable("training cancelled");

  TrainedModel out;
  model::PackageContents& pkg = out.package;
  pkg.info.task = TaskKindName(labels.task);
  pkg.info.classes = labels.classes;
  pkg.info.output_name = !spec.output_name.empty()              ? spec.output_name
                         : labels.task == TaskKind::kRegression ? spec.target
                                                                : spec.target + "_probability";
  status("training " + spec.model + " on " + std::to_string(train_rows.size()) + " rows x " +
         std::to_string(nf) + " features");
  if (xgb) {
    KEEL_ASSIGN_OR_RETURN(XgbParams xp, MakeXgbParams(spec, labels.task, labels.classes.size(),
                                                      spec.model == "xgboost-linear"));
    XgbMatrix mt{x_train.data(), train_rows.size(),        nf,
                 y_train.data(), pipeline.feature_names(), {}};
    XgbMatrix mv{x_valid.data(), valid_rows.size(),        nf,
                 y_valid.data(), pipeline.feature_names(), {}};
    if (popt.encoding == data::CategoricalEncoding::kNative) {
      mt.feature_types = pipeline.feature_types();
      mv.feature_types = pipeline.feature_types();
    }
    XgbOptions xo;
    xo.params = xp.booster;
    xo.num_boost_round = xp.rounds;
    xo.early_stopping_rounds = spec.early_stopping_rounds;
    xo.cancel = progress.cancel;
    const auto t0 = Clock::now();
    xo.progress = [&](int round, int total, const std::string& line) {
      std::string eval = line;
      const size_t tab = eval.find('\t');
      if (tab != std::string::npos) eval = eval.substr(tab + 1);
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      char buf[64];
      std::snprintf(buf, sizeof buf, "  %.1f s", secs);
      status("round " + std::to_string(round) + "/" + std::to_string(total) + "  " + eval + buf);
    };
    KEEL_ASSIGN_OR_RETURN(XgbResult r, TrainXgboost(mt, valid_rows.empty() ? nullptr : &mv, xo));
    pkg.model_bytes = std::move(r.model_json);
    pkg.info.format = "xgboost-json";
    pkg.xgboost_version = XgboostVersion();
    for (const auto& [k, v] : xp.booster) {
      if (k != "nthread" && k != "verbosity" && k != "validate_parameters") {
        out.params.emplace_back(k, v);
      }
    }
    out.params.emplace_back("num_boost_round", std::to_string(xp.rounds));
    if (spec.early_stopping_rounds > 0) {
      out.metrics.push_back({"best_iteration", static_cast<double>(r.best_round)});
    }
    out.metrics.push_back({"rounds", static_cast<double>(r.rounds)});
  } else {
    if ((spec.model == "logistic") != (labels.task == TaskKind::kBinary)) {
      return InvalidArgument(spec.model == "logistic"
                                 ? "--model logistic needs a binary target"
                                 : "--model linear needs a numeric (regression) target");
    }
    LinearOptions lo;
    lo.logistic = spec.model == "logistic";
    for (const auto& [k, v] : spec.params) {
      try {
        if (k == "l2") {
          lo.l2 = std::stod(v);
        } else if (k == "max_iter") {
          lo.max_iter = std::stoi(v);
        } else {
          return InvalidArgument("--param " + k + ": keel " + spec.model +
                                 " models take l2 and max_iter");
        }
      } catch (const std::exception&) {
        return InvalidArgument("--param " + k + "=" + v + ": not a number");
      }
    }
    KEEL_ASSIGN_OR_RETURN(std::string json,
                          TrainLinear(x_train.data(), y_train.data(), train_rows.size(), nf,
                                      pipeline.feature_names(), lo));
    pkg.model_bytes = std::move(json);
    pkg.info.format = "keel-linear";
    out.params.emplace_back("l2", FormatNumber(lo.l2));
    out.params.emplace_back("max_iter", std::to_string(lo.max_iter));
  }
  if (cancelled()) return Unavailable("training cancelled");

  // Evaluate with keel's own engine on the imported model: what is served is
  // what is measured.
  KEEL_ASSIGN_OR_RETURN(model::Model imported,
                        model::ImportModel(pkg.model_bytes, pkg.info.format));
  KEEL_ASSIGN_OR_RETURN(model::Predictor predictor, model::Predictor::Compile(imported));
  ThreadPool& pool = ThreadPool::Default();
  std::vector<float> reference_pred;  // the predictions stored in the drift reference
  std::vector<float> reference_labels;
  bool reference_on_validation = false;
  std::vector<Metric> reference_metrics;
  auto evaluate = [&](const std::vector<float>& x, const std::vector<float>& y,
                      const std::string& prefix) {
    const size_t rows = y.size();
    if (rows == 0) return;
    std::vector<float> pred(rows * static_cast<size_t>(predictor.num_outputs()));
    predictor.PredictBatch(x.data(), rows, pred.data(), &pool);
    reference_pred = pred;  // validation when it runs (it runs last), else training
    reference_labels = y;
    reference_on_validation = prefix == "valid_";
    std::vector<Metric> m;
    if (labels.task == TaskKind::kBinary) {
      m = BinaryMetrics(pred, y);
    } else if (labels.task == TaskKind::kMulticlass) {
      m = MulticlassMetrics(pred, predictor.num_outputs(), y);
    } else {
      m = RegressionMetrics(pred, y);
    }
    for (auto& metric : m) {
      if (std::isfinite(metric.value)) out.metrics.push_back({prefix + metric.name, metric.value});
    }
    // Live performance is compared with held-out performance only.
    if (prefix == "valid_") reference_metrics = m;
  };
  evaluate(x_train, y_train, "train_");
  evaluate(x_valid, y_valid, "valid_");

  // Everything that defines the run, so `--rerun` can rebuild it.
  out.params.emplace_back("keel.model", spec.model);
  out.params.emplace_back("keel.target", spec.target);
  out.params.emplace_back("keel.data", DataLabel(spec.data_path, spec.data_label));
  if (!spec.validation_path.empty()) {
    out.params.emplace_back("keel.validation_data",
                            DataLabel(spec.validation_path, spec.validation_label));
  }
  out.params.emplace_back("keel.validation_fraction", FormatNumber(spec.validation_fraction));
  out.params.emplace_back("keel.seed", std::to_string(spec.seed));
  out.params.emplace_back("keel.task", pkg.info.task);
  if (labels.task == TaskKind::kBinary)
    out.params.emplace_back("keel.positive_class", labels.classes[1]);
  out.params.emplace_back("keel.categorical", spec.categorical);
  if (!spec.drop_columns.empty())
    out.params.emplace_back("keel.drop", JoinComma(spec.drop_columns));
  if (!spec.column_types.empty()) {
    std::vector<std::string> ct;
    for (const auto& [c, t] : spec.column_types) ct.push_back(c + ":" + t);
    out.params.emplace_back("keel.column_types", JoinComma(ct));
  }
  if (spec.early_stopping_rounds > 0) {
    out.params.emplace_back("keel.early_stopping_rounds",
                            std::to_string(spec.early_stopping_rounds));
  }
  out.params.emplace_back("keel.output_name", pkg.info.output_name);
  for (const auto& [k, v] : spec.params) out.params.emplace_back("keel.param." + k, v);

  // Data and code versions.
  KEEL_ASSIGN_OR_RETURN(DataVersion dv, VersionOf("train", spec.data_path, table));
  dv.path = DataLabel(spec.data_path, spec.data_label);
  out.data.push_back(dv);
  if (valid_table) {
    KEEL_ASSIGN_OR_RETURN(DataVersion vv,
                          VersionOf("validation", spec.validation_path, *valid_table));
    vv.path = DataLabel(spec.validation_path, spec.validation_label);
    out.data.push_back(vv);
  }
  for (const DataVersion& d : out.data) {
    out.tags.emplace_back("keel.data." + d.role + ".sha256", d.sha256);
    out.tags.emplace_back("keel.data." + d.role + ".rows", std::to_string(d.rows));
    out.tags.emplace_back("keel.data." + d.role + ".columns", std::to_string(d.columns));
    out.tags.emplace_back("keel.data." + d.role + ".path", d.path);
  }
  out.tags.emplace_back("keel.rows.train", std::to_string(train_rows.size()));
  out.tags.emplace_back("keel.rows.validation", std::to_string(valid_rows.size()));
  out.tags.emplace_back("keel.rows.unlabeled", std::to_string(table.num_rows() - labeled.size()));
  if (auto commit = GitOutput("rev-parse HEAD"); commit.ok() && !commit->empty()) {
    out.tags.emplace_back("mlflow.source.git.commit", *commit);
    auto dirty = GitOutput("status --porcelain --untracked-files=no");
    out.tags.emplace_back("keel.code.dirty", dirty.ok() && !dirty->empty() ? "true" : "false");
  }
  out.tags.emplace_back("keel.version", KEEL_VERSION);
  out.tags.emplace_back("keel.task", pkg.info.task);
  out.tags.emplace_back("keel.model.format", pkg.info.format);

  // Schema, signature, input example and reference profile.
  nlohmann::json schema = nlohmann::json::array();
  nlohmann::json columns = nlohmann::json::array();
  nlohmann::json row = nlohmann::json::array();
  const data::Table& src = train_table;
  for (const auto& name : features) {
    const data::Column& c = *src.FindColumn(name);
    schema.push_back({{"type", SignatureType(c.type())}, {"name", name}, {"required", false}});
    columns.push_back(name);
    if (src.num_rows() == 0 || c.IsMissing(0)) {
      row.push_back(nullptr);
    } else if (c.type() == data::ColumnType::kNumeric) {
      row.push_back(c.values()[0]);
    } else if (c.type() == data::ColumnType::kBoolean) {
      row.push_back(c.values()[0] != 0);
    } else {
      row.push_back(c.ValueText(0));
    }
  }
  out.schema_json = schema.dump();
  pkg.signature_inputs = schema.dump();
  nlohmann::json outputs = nlohmann::json::array();
  outputs.push_back({{"type", "double"}, {"name", pkg.info.output_name}, {"required", true}});
  pkg.signature_outputs = outputs.dump();
  pkg.input_example_json = nlohmann::json{{"columns", columns}, {"data", {row}}}.dump();
  pkg.pipeline_json = pipeline.ToJson();
  status("profiling the training data");
  KEEL_ASSIGN_OR_RETURN(data::TableProfile profile, data::ProfileTable(train_table));
  pkg.profile_json = profile.ToJson();
  // The drift reference (sorted values, quantile bins, category counts) that
  // `keel drift --reference MODEL` and monitoring compare live data with.
  // Of the training data: the model's inputs and the target, not dropped columns.
  monitor::ReferenceOptions reference_options;
  reference_options.columns = features;
  reference_options.columns.push_back(spec.target);
  KEEL_ASSIGN_OR_RETURN(monitor::ReferenceProfile reference,
                        monitor::BuildReference(train_table, reference_options));
  AddPredictionReference(reference, pkg.info, labels.task, predictor.num_outputs(), reference_pred,
                         reference_metrics);
  // Calibrated on held-out rows only (training scores are overconfident).
  if (labels.task == TaskKind::kBinary && predictor.num_outputs() == 1 && reference_on_validation) {
    reference.calibration = monitor::Calibration::Fit(reference_pred, reference_labels);
  }
  if (reference.Find(spec.target) != nullptr) reference.target_column = spec.target;
  pkg.reference_bytes = reference.Serialize();
  out.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

Result<TrainSpec> SpecFromParams(const KeyValues& params) {
  TrainSpec spec;
  spec.data_path.clear();
  bool has_model = false;
  for (const auto& [k, v] : params) {
    try {
      if (k == "keel.model") {
        spec.model = v;
        has_model = true;
      } else if (k == "keel.target") {
        spec.target = v;
      } else if (k == "keel.data") {
        spec.data_path = v;
      } else if (k == "keel.validation_data") {
        spec.validation_path = v;
      } else if (k == "keel.validation_fraction") {
        spec.validation_fraction = std::stod(v);
      } else if (k == "keel.seed") {
        spec.seed = std::stoull(v);
      } else if (k == "keel.task") {
        spec.task = v;
      } else if (k == "keel.positive_class") {
        spec.positive_class = v;
      } else if (k == "keel.categorical") {
        spec.categorical = v;
      } else if (k == "keel.drop") {
        spec.drop_columns = SplitComma(v);
      } else if (k == "keel.column_types") {
        for (const auto& item : SplitComma(v)) {
          const size_t colon = item.rfind(':');
          if (colon == std::string::npos) return InvalidArgument("bad keel.column_types: " + v);
          spec.column_types.emplace_back(item.substr(0, colon), item.substr(colon + 1));
        }
      } else if (k == "keel.early_stopping_rounds") {
        spec.early_stopping_rounds = std::stoi(v);
      } else if (k == "keel.output_name") {
        spec.output_name = v;
      } else if (k.rfind("keel.param.", 0) == 0) {
        spec.params.emplace_back(k.substr(11), v);
      }
    } catch (const std::exception&) {
      return InvalidArgument("run param " + k + "=" + v + " is not valid");
    }
  }
  if (!has_model || spec.target.empty()) {
    return InvalidArgument(
        "the run was not made by `keel train` (no keel.model / keel.target params)");
  }
  return spec;
}

namespace internal {

Result<std::string> StartRecordedRun(const std::string& source_name, RunRecorder& recorder,
                                     const RecordOptions& options) {
  KeyValues tags = {{"mlflow.source.type", "LOCAL"}, {"mlflow.source.name", source_name}};
  for (const auto& t : options.extra_tags) tags.push_back(t);
  Result<std::string> run_id =
      recorder.StartRun(options.experiment, options.experiment_id, options.run_name, tags);
  if (run_id.ok() && options.on_run_started) options.on_run_started(*run_id);
  return run_id;
}

Status FailRun(const Status& error, const std::string& run_id, const TrainProgress& progress,
               RunRecorder& recorder) {
  const bool killed = progress.cancel != nullptr && progress.cancel->load();
  recorder.EndRun(run_id, killed ? "KILLED" : "FAILED").IgnoreError();
  return error;
}

Status LogTrained(const TrainedModel& m, const std::string& run_id, RunRecorder& recorder) {
  KEEL_RETURN_IF_ERROR(recorder.LogParams(run_id, m.params));
  KEEL_RETURN_IF_ERROR(recorder.LogMetrics(run_id, m.metrics));
  KEEL_RETURN_IF_ERROR(recorder.SetTags(run_id, m.tags));
  return recorder.LogDatasets(run_id, m.data, m.schema_json);
}

Result<RecordResult> PackageAndRegister(const TrainedModel& m, const TrainProgress& progress,
                                        RunRecorder& recorder, const RecordOptions& options,
                                        RecordResult result,
                                        const std::function<Status(const Status&)>& fail) {
  fs::path scratch = options.scratch_dir.empty() ? fs::temp_directory_path() : options.scratch_dir;
  const fs::path staged = scratch / ("keel-model-" + RandomHex(8));
  const fs::path dir = staged / "model";
  std::error_code ec;
  Status s = model::WriteModelPackage(dir, m.package);
  if (s.ok()) {
    // The package must load and score its own input example before it is logged.
    auto loaded = model::LoadModelPackage(dir);
    s = loaded.ok() ? model::CheckLoadedModel(**loaded) : loaded.status();
  }
  if (s.ok() && progress.cancel != nullptr && progress.cancel->load()) {
    s = Unavailable("training cancelled");
  }
  Result<std::string> uri =
      s.ok() ? recorder.UploadDirectory(result.run_id, dir, "model") : Result<std::string>(s);
  fs::remove_all(staged, ec);
  if (!uri.ok()) return fail(uri.status());
  result.model_uri = *uri;
  KEEL_RETURN_IF_ERROR(recorder.EndRun(result.run_id, "FINISHED"));
  if (!options.register_name.empty()) {
    KEEL_ASSIGN_OR_RETURN(auto version, recorder.RegisterModel(options.register_name,
                                                               result.model_uri, result.run_id));
    result.version = version.first;
    result.version_status = version.second;
  }
  return result;
}

}  // namespace internal

Result<RecordResult> TrainAndRecord(const TrainSpec& spec, const TrainProgress& progress,
                                    RunRecorder& recorder, const RecordOptions& options) {
  RecordResult result;
  KEEL_ASSIGN_OR_RETURN(result.run_id, internal::StartRecordedRun("keel train", recorder, options));
  auto fail = [&](const Status& s) {
    return internal::FailRun(s, result.run_id, progress, recorder);
  };
  auto trained = TrainModel(spec, progress);
  if (!trained.ok()) return fail(trained.status());
  TrainedModel& m = *trained;
  m.package.info.run_id = result.run_id;
  Status s = internal::LogTrained(m, result.run_id, recorder);
  if (s.ok() && spec.snapshot_data) {
    // Content-addressed copies: the same bytes are stored once across runs.
    KeyValues snapshot_tags;
    for (const DataVersion& d : m.data) {
      const std::string local = d.role == "train" ? spec.data_path : spec.validation_path;
      auto uri = recorder.PutSharedFile(
          "datasets/sha256/" + d.sha256 + "/" + fs::path(d.path).filename().string(), local);
      if (!uri.ok()) {
        s = uri.status();
        break;
      }
      snapshot_tags.emplace_back("keel.data." + d.role + ".snapshot", *uri);
    }
    if (s.ok()) s = recorder.SetTags(result.run_id, snapshot_tags);
  }
  if (!s.ok()) return fail(s);

  return internal::PackageAndRegister(m, progress, recorder, options, result, fail);
}

namespace {

std::string Lookup(const KeyValues& kv, const std::string& key) {
  for (const auto& [k, v] : kv) {
    if (k == key) return v;
  }
  return "";
}

}  // namespace

Result<RecordResult> Rerun(const std::string& run_id, const TrainProgress& progress,
                           RunRecorder& recorder, RecordOptions options) {
  KEEL_ASSIGN_OR_RETURN(RunRecorder::RunInfo info, recorder.GetRun(run_id));
  KEEL_ASSIGN_OR_RETURN(TrainSpec spec, SpecFromParams(info.params));
  fs::path scratch = options.scratch_dir.empty() ? fs::temp_directory_path() : options.scratch_dir;
  const fs::path dir = scratch / ("keel-rerun-" + RandomHex(8));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal(dir.string() + ": " + ec.message());
  auto resolve = [&](const std::string& role, std::string& path, std::string& label) -> Status {
    const std::string want = Lookup(info.tags, "keel.data." + role + ".sha256");
    const std::string snapshot = Lookup(info.tags, "keel.data." + role + ".snapshot");
    label = path;
    if (!snapshot.empty()) {
      const fs::path local = dir / (role + "-" + fs::path(path).filename().string());
      KEEL_RETURN_IF_ERROR(recorder.DownloadFile(snapshot, local));
      path = local.string();
      spec.snapshot_data = true;
    }
    KEEL_ASSIGN_OR_RETURN(std::string got, Sha256File(path));
    if (!want.empty() && got != want) {
      return FailedPrecondition(label + " changed since run " + run_id + " (sha256 " + got +
                                ", the run used " + want +
                                "); train with --snapshot-data to keep a copy");
    }
    return OkStatus();
  };
  Status s = resolve("train", spec.data_path, spec.data_label);
  if (s.ok() && !spec.validation_path.empty()) {
    s = resolve("validation", spec.validation_path, spec.validation_label);
  }
  if (!s.ok()) {
    fs::remove_all(dir, ec);
    return s;
  }
  options.experiment_id = info.experiment_id;
  if (options.run_name.empty()) options.run_name = "rerun-" + run_id.substr(0, 8);
  options.extra_tags.emplace_back("keel.rerun_of", run_id);
  auto result = TrainAndRecord(spec, progress, recorder, options);
  fs::remove_all(dir, ec);
  return result;
}

}  // namespace keel::train
