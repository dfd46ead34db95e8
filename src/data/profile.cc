#include "keel/data/profile.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "keel/core/json.h"

namespace keel::data {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void ProfileNumeric(const Column& column, const TableProfile& table, int bins, ColumnProfile& p) {
  std::vector<double> sorted;
  sorted.reserve(column.size() - column.missing_count());
  double sum = 0;
  uint64_t finite = 0;
  for (double v : column.values()) {
    if (std::isnan(v)) continue;
    sorted.push_back(v);
    if (std::isfinite(v)) {
      sum += v;
      ++finite;
    }
  }
  p.count = sorted.size();
  p.missing = column.size() - sorted.size();
  if (sorted.empty()) {
    p.min = p.max = p.mean = p.std = kNaN;
    return;
  }
  std::sort(sorted.begin(), sorted.end());
  p.min = sorted.front();
  p.max = sorted.back();
  p.quantiles.reserve(table.quantile_probs.size());
  for (double q : table.quantile_probs) p.quantiles.push_back(SortedQuantile(sorted, q));
  if (finite == 0) {
    p.mean = p.std = kNaN;
    return;
  }
  p.mean = sum / static_cast<double>(finite);
  double ss = 0;
  for (double v : sorted) {
    if (std::isfinite(v)) ss += (v - p.mean) * (v - p.mean);
  }
  p.std = std::sqrt(ss / static_cast<double>(finite));

  // Finite range: the first and last finite values of the sorted copy.
  auto first =
      std::find_if(sorted.begin(), sorted.end(), [](double v) { return std::isfinite(v); });
  auto last =
      std::find_if(sorted.rbegin(), sorted.rend(), [](double v) { return std::isfinite(v); });
  const double lo = *first;
  const double hi = *last;
  const auto n = static_cast<size_t>(bins);
  p.histogram_edges.resize(n + 1);
  for (size_t i = 0; i <= n; ++i) {
    const double t = static_cast<double>(i) / static_cast<double>(n);
    double edge = lo + (hi - lo) * t;
    if (!std::isfinite(edge)) edge = lo * (1 - t) + hi * t;  // hi - lo overflowed
    p.histogram_edges[i] = edge;
  }
  p.histogram_edges[n] = hi;
  p.histogram_counts.assign(n, 0);
  // Values are sorted: walk bins forward.
  size_t bin = 0;
  for (double v : sorted) {
    if (v == -HUGE_VAL) {
      ++p.histogram_counts[0];
      continue;
    }
    if (v == HUGE_VAL) {
      ++p.histogram_counts[n - 1];
      continue;
    }
    while (bin + 1 < n && lo < hi && v >= p.histogram_edges[bin + 1]) ++bin;
    ++p.histogram_counts[bin];
  }
}

void ProfileCategorical(const Column& column, ColumnProfile& p) {
  const std::vector<std::string>& dict = column.dictionary();
  std::vector<uint64_t> counts(dict.size(), 0);
  for (int32_t code : column.codes()) {
    if (code >= 0) ++counts[static_cast<size_t>(code)];
  }
  std::vector<size_t> order;
  for (size_t i = 0; i < dict.size(); ++i) {
    if (counts[i] > 0) order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return dict[a] < dict[b]; });
  for (size_t i : order) {
    p.categories.push_back(dict[i]);
    p.category_counts.push_back(counts[i]);
  }
  p.missing = column.missing_count();
  p.count = column.size() - p.missing;
}

void ProfileBoolean(const Column& column, ColumnProfile& p) {
  uint64_t falses = 0, trues = 0;
  for (double v : column.values()) {
    if (v == 0.0) ++falses;
    if (v == 1.0) ++trues;
  }
  p.categories = {"false", "true"};
  p.category_counts = {falses, trues};
  p.count = falses + trues;
  p.missing = column.size() - p.count;
}

}  // namespace

double SortedQuantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return kNaN;
  const double h = static_cast<double>(sorted.size() - 1) * std::clamp(q, 0.0, 1.0);
  const auto lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = h - static_cast<double>(lo);
  const double a = sorted[lo];
  const double b = sorted[hi];
  if (frac == 0.0 || a == b) return a;
  if (std::isinf(a)) return a;
  if (std::isinf(b)) return b;
  return a + frac * (b - a);
}

Result<TableProfile> ProfileTable(const Table& table, const ProfileOptions& options) {
  if (options.quantile_intervals < 1 || options.histogram_bins < 1) {
    return InvalidArgument("profile: quantile_intervals and histogram_bins must be at least 1");
  }
  TableProfile out;
  out.num_rows = table.num_rows();
  const int q = options.quantile_intervals;
  for (int i = 0; i <= q; ++i) {
    out.quantile_probs.push_back(i == q ? 1.0 : static_cast<double>(i) / q);
  }
  std::vector<const Column*> columns;
  if (options.columns.empty()) {
    for (const Column& c : table.columns()) columns.push_back(&c);
  } else {
    for (const std::string& name : options.columns) {
      const Column* c = table.FindColumn(name);
      if (c == nullptr) return InvalidArgument("profile: the table has no column '" + name + "'");
      columns.push_back(c);
    }
  }
  for (const Column* c : columns) {
    ColumnProfile p;
    p.name = c->name();
    p.type = c->type();
    switch (c->type()) {
      case ColumnType::kNumeric:
        ProfileNumeric(*c, out, options.histogram_bins, p);
        break;
      case ColumnType::kCategorical:
        ProfileCategorical(*c, p);
        break;
      case ColumnType::kBoolean:
        ProfileBoolean(*c, p);
        break;
    }
    out.columns.push_back(std::move(p));
  }
  return out;
}

const ColumnProfile* TableProfile::Find(std::string_view name) const {
  for (const ColumnProfile& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

namespace {

void WriteDoubles(JsonWriter& w, const std::vector<double>& values) {
  w.BeginArray();
  for (double v : values) w.Double(v);
  w.EndArray();
}

void WriteCounts(JsonWriter& w, const std::vector<uint64_t>& values) {
  w.BeginArray();
  for (uint64_t v : values) w.Int(static_cast<int64_t>(v));
  w.EndArray();
}

Status Bad(std::string_view what) { return InvalidArgument("profile: " + std::string(what)); }

Result<std::vector<double>> ReadDoubles(simdjson::dom::element e, std::string_view field) {
  simdjson::dom::array arr;
  if (e.get_array().get(arr)) return Bad("'" + std::string(field) + "' must be an array");
  std::vector<double> out;
  for (simdjson::dom::element item : arr) {
    KEEL_ASSIGN_OR_RETURN(double v, JsonElementDouble(item, field));
    out.push_back(v);
  }
  return out;
}

Result<std::vector<uint64_t>> ReadCounts(simdjson::dom::element e, std::string_view field) {
  simdjson::dom::array arr;
  if (e.get_array().get(arr)) return Bad("'" + std::string(field) + "' must be an array");
  std::vector<uint64_t> out;
  for (simdjson::dom::element item : arr) {
    uint64_t v;
    if (item.get_uint64().get(v)) return Bad("'" + std::string(field) + "' must hold counts");
    out.push_back(v);
  }
  return out;
}

Result<uint64_t> ReadCount(simdjson::dom::object o, std::string_view field) {
  uint64_t v;
  if (o[field].get_uint64().get(v)) return Bad("'" + std::string(field) + "' must be a count");
  return v;
}

Result<double> ReadDouble(simdjson::dom::object o, std::string_view field) {
  simdjson::dom::element e;
  if (o[field].get(e)) return Bad("'" + std::string(field) + "' is missing");
  return JsonElementDouble(e, field);
}

}  // namespace

std::string TableProfile::ToJson() const {
  JsonWriter w(4096);
  w.BeginObject();
  w.Key("keel_profile");
  w.Int(1);
  w.Key("num_rows");
  w.Int(static_cast<int64_t>(num_rows));
  w.Key("quantile_probs");
  WriteDoubles(w, quantile_probs);
  w.Key("columns");
  w.BeginArray();
  for (const ColumnProfile& c : columns) {
    w.BeginObject();
    w.Key("name");
    w.String(c.name);
    w.Key("type");
    w.String(ColumnTypeName(c.type));
    w.Key("count");
    w.Int(static_cast<int64_t>(c.count));
    w.Key("missing");
    w.Int(static_cast<int64_t>(c.missing));
    if (c.type == ColumnType::kNumeric) {
      w.Key("min");
      w.Double(c.min);
      w.Key("max");
      w.Double(c.max);
      w.Key("mean");
      w.Double(c.mean);
      w.Key("std");
      w.Double(c.std);
      w.Key("quantiles");
      WriteDoubles(w, c.quantiles);
      w.Key("histogram");
      w.BeginObject();
      w.Key("edges");
      WriteDoubles(w, c.histogram_edges);
      w.Key("counts");
      WriteCounts(w, c.histogram_counts);
      w.EndObject();
    } else {
      w.Key("categories");
      w.BeginArray();
      for (const std::string& s : c.categories) w.String(s);
      w.EndArray();
      w.Key("counts");
      WriteCounts(w, c.category_counts);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

Result<TableProfile> TableProfile::FromJson(std::string_view json) {
  KEEL_ASSIGN_OR_RETURN(JsonDoc doc, ParseJsonObject(json));
  simdjson::dom::object root = doc.root().get_object().value_unsafe();
  int64_t version;
  if (root["keel_profile"].get_int64().get(version) || version != 1) {
    return Bad("unsupported or missing keel_profile version (this keel reads version 1)");
  }
  TableProfile p;
  KEEL_ASSIGN_OR_RETURN(p.num_rows, ReadCount(root, "num_rows"));
  simdjson::dom::element probs;
  if (root["quantile_probs"].get(probs)) return Bad("'quantile_probs' is missing");
  KEEL_ASSIGN_OR_RETURN(p.quantile_probs, ReadDoubles(probs, "quantile_probs"));
  simdjson::dom::array columns;
  if (root["columns"].get_array().get(columns)) return Bad("'columns' must be an array");
  for (simdjson::dom::element ce : columns) {
    simdjson::dom::object co;
    if (ce.get_object().get(co)) return Bad("each column must be an object");
    ColumnProfile c;
    std::string_view name, type;
    if (co["name"].get_string().get(name)) return Bad("a column lacks a string 'name'");
    c.name = std::string(name);
    if (co["type"].get_string().get(type)) return Bad("column '" + c.name + "' lacks 'type'");
    std::optional<ColumnType> t = ColumnTypeFromName(type);
    if (!t) return Bad("column '" + c.name + "' has an unknown type");
    c.type = *t;
    KEEL_ASSIGN_OR_RETURN(c.count, ReadCount(co, "count"));
    KEEL_ASSIGN_OR_RETURN(c.missing, ReadCount(co, "missing"));
    if (c.count + c.missing != p.num_rows) {
      return Bad("column '" + c.name + "': count + missing differs from num_rows");
    }
    if (c.type == ColumnType::kNumeric) {
      KEEL_ASSIGN_OR_RETURN(c.min, ReadDouble(co, "min"));
      KEEL_ASSIGN_OR_RETURN(c.max, ReadDouble(co, "max"));
      KEEL_ASSIGN_OR_RETURN(c.mean, ReadDouble(co, "mean"));
      KEEL_ASSIGN_OR_RETURN(c.std, ReadDouble(co, "std"));
      simdjson::dom::element e;
      if (co["quantiles"].get(e)) return Bad("column '" + c.name + "' lacks 'quantiles'");
      KEEL_ASSIGN_OR_RETURN(c.quantiles, ReadDoubles(e, "quantiles"));
      if (!c.quantiles.empty() && c.quantiles.size() != p.quantile_probs.size()) {
        return Bad("column '" + c.name + "': quantiles do not match quantile_probs");
      }
      simdjson::dom::object h;
      if (co["histogram"].get_object().get(h))
        return Bad("column '" + c.name + "' lacks 'histogram'");
      if (h["edges"].get(e)) return Bad("column '" + c.name + "' lacks histogram edges");
      KEEL_ASSIGN_OR_RETURN(c.histogram_edges, ReadDoubles(e, "edges"));
      if (h["counts"].get(e)) return Bad("column '" + c.name + "' lacks histogram counts");
      KEEL_ASSIGN_OR_RETURN(c.histogram_counts, ReadCounts(e, "counts"));
      if (c.histogram_edges.size() !=
          (c.histogram_counts.empty() ? 0 : c.histogram_counts.size() + 1)) {
        return Bad("column '" + c.name + "': a histogram needs one more edge than counts");
      }
    } else {
      simdjson::dom::element e;
      if (co["categories"].get(e)) return Bad("column '" + c.name + "' lacks 'categories'");
      simdjson::dom::array arr;
      if (e.get_array().get(arr)) return Bad("'categories' must be an array");
      for (simdjson::dom::element item : arr) {
        std::string_view s;
        if (item.get_string().get(s)) return Bad("'categories' must hold strings");
        c.categories.emplace_back(s);
      }
      if (co["counts"].get(e)) return Bad("column '" + c.name + "' lacks 'counts'");
      KEEL_ASSIGN_OR_RETURN(c.category_counts, ReadCounts(e, "counts"));
      if (c.categories.size() != c.category_counts.size()) {
        return Bad("column '" + c.name + "': categories and counts differ in length");
      }
    }
    p.columns.push_back(std::move(c));
  }
  return p;
}

}  // namespace keel::data
