// Window profiles (keel/monitor/window_profile.h): pieces of a window merge
// to the whole window's report (bit for bit while exact), and gridded pieces
// stay within the error the header states, against the exact evaluation of
// the same rows. A profile's stored form decodes to the same profile bit for
// bit, and damaged or foreign blobs are refused.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "keel/monitor/window_profile.h"
#include "keel/train/metrics.h"

namespace keel::monitor {
namespace {

// Reference: x ~ N(10, 2) (4000 rows), tier of 3 categories, and a binary
// model's validation scores.
struct Fixture {
  ReferenceProfile ref;
  model::PackageInfo info;

  explicit Fixture(std::string task = "binary") {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal(10, 2);
    data::Table t;
    std::vector<double> x;
    std::vector<std::string> tier;
    for (int i = 0; i < 4000; ++i) {
      x.push_back(normal(rng));
      tier.push_back(i % 3 == 0 ? "gold" : i % 3 == 1 ? "silver" : "bronze");
    }
    EXPECT_TRUE(t.AddColumn(data::Column::Numeric("x", x)).ok());
    EXPECT_TRUE(t.AddColumn(data::Column::CategoricalFromText("tier", tier)).ok());
    ref = BuildReference(t).value();
    info.task = task;
    if (task == "binary") {
      info.classes = {"0", "1"};
      ReferenceColumn pred;
      pred.name = "p";
      std::vector<double> probs;
      std::uniform_real_distribution<double> u(0, 1);
      for (int i = 0; i < 2000; ++i) probs.push_back(u(rng));
      pred.numeric = NumericSample::FromValues(probs);
      pred.bins = FitQuantileBins(pred.numeric.sorted).value();
      ref.columns.push_back(pred);
      ref.prediction_column = "p";
    } else if (task == "multiclass") {
      info.classes = {"a", "b", "c"};
    }
  }
};

// Logged rows: x ~ N(10 + shift, 2), every 50th missing; tier; the output; a
// label on most rows; latency ~ lognormal.
std::vector<serve::LoggedPrediction> Rows(const model::PackageInfo& info, size_t n, double shift,
                                          uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(10 + shift, 2);
  std::lognormal_distribution<double> latency(6, 0.5);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<serve::LoggedPrediction> rows(n);
  for (size_t i = 0; i < n; ++i) {
    serve::PredictionRecord& r = rows[i].record;
    const double x = normal(rng);
    r.time_ms = 1000 + static_cast<int64_t>(i);
    r.endpoint = i % 4 == 0 ? "batch" : "predict";
    r.latency_us = latency(rng);
    r.input_json = std::string("{\"x\":") + (i % 50 == 0 ? "null" : std::to_string(x)) +
                   ",\"tier\":\"" +
                   (i % 5 == 0  ? "gold"
                    : i % 5 < 3 ? "silver"
                                : "bronze") +
                   "\"}";
    const double z = 1 / (1 + std::exp(-(x - 10)));
    if (info.task == "binary") {
      r.output_json = std::to_string(z);
      if (i % 3 != 0) rows[i].label_json = u(rng) < z ? "1" : "0";
    } else if (info.task == "multiclass") {
      const double a = u(rng), b = u(rng) * (1 - a);
      r.output_json =
          "[" + std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(1 - a - b) + "]";
      rows[i].label_json = i % 3 == 0 ? "\"a\"" : i % 3 == 1 ? "\"b\"" : "\"c\"";
    } else {
      r.output_json = std::to_string(2 * x);
      rows[i].label_json = std::to_string(2 * x + u(rng) - 0.5);
    }
  }
  return rows;
}

WindowProfile MergedPieces(const ProfileLayout& layout,
                           const std::vector<serve::LoggedPrediction>& rows, size_t pieces,
                           const ProfileOptions& piece_options, const ProfileOptions& merged) {
  WindowProfile all = EmptyProfile(layout, merged);
  const size_t step = (rows.size() + pieces - 1) / pieces;
  for (size_t start = 0; start < rows.size(); start += step) {
    const size_t end = std::min(rows.size(), start + step);
    all.Merge(ProfileOf(layout, std::span(rows).subspan(start, end - start), piece_options),
              layout);
  }
  return all;
}

DriftOptions AllStatistics() {
  DriftOptions o;
  o.extra = {"ks",        "psi",      "wasserstein", "wasserstein_norm", "jensenshannon",
             "hellinger", "chisquare"};
  return o;
}

const ExtraStatistic& Extra(const WindowReport& w, std::string_view column, std::string_view stat) {
  for (const ColumnReport& c : w.drift.columns) {
    if (c.name != column) continue;
    for (const ExtraStatistic& e : c.extra) {
      if (e.name == stat) return e;
    }
  }
  ADD_FAILURE() << "no " << stat << " on " << column;
  static ExtraStatistic none;
  return none;
}

WindowQuery Query() {
  WindowQuery q;
  q.model = "m";
  q.version = "1";
  q.from_ms = 0;
  q.to_ms = 1'000'000;
  return q;
}

TEST(WindowProfileTest, ExactPiecesMergeToTheWholeWindowsReport) {
  Fixture f;
  const ProfileLayout layout(f.ref, f.info);
  const auto rows = Rows(f.info, 3000, 0.5, 11);
  const WindowProfile whole = ProfileOf(layout, rows);
  const WindowProfile merged = MergedPieces(layout, rows, 7, {}, {});
  ASSERT_TRUE(merged.inputs[0].values.exact());
  EXPECT_EQ(merged.rows, 3000u);
  EXPECT_EQ(merged.inputs[0].missing, 60u);
  auto a = EvaluateProfile(layout, whole, Query(), AllStatistics());
  auto b = EvaluateProfile(layout, merged, Query(), AllStatistics());
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  ASSERT_EQ(a->drift.columns.size(), 3u);  // x, tier, p
  for (const ColumnReport& c : a->drift.columns) {
    for (const ExtraStatistic& e : c.extra) {
      ASSERT_TRUE(e.error.empty()) << c.name << " " << e.name << ": " << e.error;
      EXPECT_EQ(e.value.score, Extra(*b, c.name, e.name).value.score) << c.name << " " << e.name;
    }
  }
  ASSERT_EQ(a->performance.live.size(), 6u);
  for (size_t i = 0; i < a->performance.live.size(); ++i) {
    EXPECT_NEAR(a->performance.live[i].second, b->performance.live[i].second, 1e-12)
        << a->performance.live[i].first;
  }
  EXPECT_EQ(a->performance.labelled, 2000u);
  EXPECT_EQ(a->performance.estimated, b->performance.estimated);
  EXPECT_EQ(a->operational.latency_p95_us, b->operational.latency_p95_us);
  EXPECT_EQ(a->operational.endpoints, b->operational.endpoints);

  // The live metrics are the train metrics of the labelled rows.
  std::vector<float> probs, labels;
  for (const auto& r : rows) {
    if (!r.label_json) continue;
    probs.push_back(std::stof(r.record.output_json));
    labels.push_back(*r.label_json == "1" ? 1.0f : 0.0f);
  }
  const auto expected = train::BinaryMetrics(probs, labels);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(expected[i].name, a->performance.live[i].first);
    EXPECT_NEAR(expected[i].value, a->performance.live[i].second, 1e-12) << expected[i].name;
  }
}

TEST(WindowProfileTest, GriddedPiecesStayWithinTheStatedError) {
  Fixture f;
  const ProfileLayout layout(f.ref, f.info);
  for (double shift : {0.0, 0.6, 3.0}) {
    SCOPED_TRACE("shift " + std::to_string(shift));
    const auto rows = Rows(f.info, 30000, shift, 3);
    ProfileOptions exact;
    exact.exact_limit = 1'000'000;
    ProfileOptions gridded;
    gridded.exact_limit = 0;
    const WindowProfile truth = ProfileOf(layout, rows, exact);
    const WindowProfile pieces = MergedPieces(layout, rows, 24, gridded, {});
    ASSERT_TRUE(truth.inputs[0].values.exact());
    ASSERT_FALSE(pieces.inputs[0].values.exact());
    auto a = EvaluateProfile(layout, truth, Query(), AllStatistics());
    auto b = EvaluateProfile(layout, pieces, Query(), AllStatistics());
    ASSERT_TRUE(a.ok()) << a.status().message();
    ASSERT_TRUE(b.ok()) << b.status().message();
    for (std::string_view col : {"x", "p"}) {
      SCOPED_TRACE(col);
      // Histogram statistics on the profile's bins: exact.
      for (std::string_view s : {"psi", "jensenshannon", "hellinger"}) {
        EXPECT_NEAR(Extra(*a, col, s).value.score, Extra(*b, col, s).value.score, 1e-12) << s;
      }
      // D within the largest window share of one interior grid bin (~1/1000 here).
      EXPECT_NEAR(Extra(*a, col, "ks").value.statistic, Extra(*b, col, "ks").value.statistic,
                  0.004);
      EXPECT_NEAR(Extra(*a, col, "wasserstein_norm").value.score,
                  Extra(*b, col, "wasserstein_norm").value.score, 0.01);
    }
    // Categories and missing counts are exact.
    EXPECT_EQ(Extra(*a, "tier", "chisquare").value.score,
              Extra(*b, "tier", "chisquare").value.score);
    EXPECT_EQ(a->drift.columns[0].drift.missing.cur_share,
              b->drift.columns[0].drift.missing.cur_share);
    EXPECT_EQ(a->drift.columns[0].drift.drift, b->drift.columns[0].drift.drift);
    // Confusion and log loss are exact; AUC up to ties inside one grid bin.
    for (size_t i = 0; i < a->performance.live.size(); ++i) {
      const auto& [name, v] = a->performance.live[i];
      EXPECT_NEAR(v, b->performance.live[i].second, name == "auc" ? 0.002 : 1e-9) << name;
    }
    for (size_t i = 0; i < a->performance.estimated.size(); ++i) {
      EXPECT_NEAR(a->performance.estimated[i].second, b->performance.estimated[i].second, 0.002)
          << a->performance.estimated[i].first;
    }
    for (auto [x, y] : {std::pair{a->operational.latency_p50_us, b->operational.latency_p50_us},
                        std::pair{a->operational.latency_p99_us, b->operational.latency_p99_us}}) {
      EXPECT_NEAR(y / x, 1.0, 0.005);
    }
  }
}

TEST(WindowProfileTest, ValuesFarBeyondTheReferenceKeepTheirDistance) {
  Fixture f;
  const ProfileLayout layout(f.ref, f.info);
  const auto rows = Rows(f.info, 20000, 500.0, 5);  // 250 reference deviations away
  ProfileOptions exact;
  exact.exact_limit = 1'000'000;
  ProfileOptions gridded;
  gridded.exact_limit = 0;
  auto a = EvaluateProfile(layout, ProfileOf(layout, rows, exact), Query(), AllStatistics());
  auto b =
      EvaluateProfile(layout, MergedPieces(layout, rows, 5, gridded, {}), Query(), AllStatistics());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Extra(*b, "x", "ks").value.statistic, 1.0);
  const double wa = Extra(*a, "x", "wasserstein").value.score;
  const double wb = Extra(*b, "x", "wasserstein").value.score;
  EXPECT_NEAR(wb / wa, 1.0, 0.01);
  EXPECT_GT(wa, 400);
}

// A reference of discrete columns: a code that is 0 or 2, and 1 on 2 rows of
// 4,000 (a rare value inside the range), a count 0..30, a boolean; windows of
// one value each, gridded and exact.
TEST(WindowProfileTest, DiscreteColumnsAndRareValuesStayExactWhenGridded) {
  data::Table t;
  std::vector<double> flag, count, vip;
  for (int i = 0; i < 4000; ++i) {
    flag.push_back(i < 2001 ? 0 : i < 2003 ? 1 : 2);  // the 1s fall between quantile edges
    count.push_back(i % 31);
    vip.push_back(i % 3 == 0);
  }
  ASSERT_TRUE(t.AddColumn(data::Column::Numeric("flag", flag)).ok());
  ASSERT_TRUE(t.AddColumn(data::Column::Numeric("count", count)).ok());
  ASSERT_TRUE(t.AddColumn(data::Column::Boolean("vip", vip).value()).ok());
  const ReferenceProfile ref = BuildReference(t).value();
  model::PackageInfo info;
  info.task = "regression";
  const ProfileLayout layout(ref, info);
  std::vector<serve::LoggedPrediction> rows(20000);
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i].record.input_json = "{\"flag\":1,\"count\":" + std::to_string((i * 7) % 13) +
                                ",\"vip\":" + (i % 2 ? "true" : "false") + "}";
    rows[i].record.output_json = "1.5";
  }
  ProfileOptions exact;
  exact.exact_limit = 1'000'000;
  ProfileOptions gridded;
  gridded.exact_limit = 0;
  DriftOptions o = AllStatistics();
  o.preset = "evidently";
  auto a = EvaluateProfile(layout, ProfileOf(layout, rows, exact), Query(), o);
  auto b = EvaluateProfile(layout, MergedPieces(layout, rows, 8, gridded, {}), Query(), o);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t c = 0; c < a->drift.columns.size(); ++c) {
    const ColumnReport& x = a->drift.columns[c];
    const ColumnReport& y = b->drift.columns[c];
    SCOPED_TRACE(x.name);
    EXPECT_EQ(x.drift.value.score, y.drift.value.score);
    EXPECT_EQ(x.drift.drift, y.drift.drift);
    for (size_t e = 0; e < x.extra.size(); ++e) {
      EXPECT_EQ(x.extra[e].value.score, y.extra[e].value.score) << x.extra[e].name;
    }
  }
  EXPECT_TRUE(a->drift.columns[0].drift.drift);  // the stuck flag is seen
  EXPECT_NEAR(Extra(*b, "flag", "wasserstein").value.score, 1.0 - 2.0 / 4000, 1e-12);
}

TEST(WindowProfileTest, RegressionAndMulticlassMetricsMergeExactly) {
  for (std::string task : {"regression", "multiclass"}) {
    SCOPED_TRACE(task);
    Fixture f(task);
    const ProfileLayout layout(f.ref, f.info);
    const auto rows = Rows(f.info, 5000, 0, 9);
    ProfileOptions gridded;
    gridded.exact_limit = 0;
    auto w = EvaluateProfile(layout, MergedPieces(layout, rows, 13, gridded, {}), Query(), {});
    ASSERT_TRUE(w.ok()) << w.status().message();
    std::vector<float> preds, labels;
    for (const auto& r : rows) {
      if (task == "regression") {
        preds.push_back(std::stof(r.record.output_json));
        labels.push_back(std::stof(*r.label_json));
      } else {
        const std::string& o = r.record.output_json;
        size_t pos = 1;
        for (int k = 0; k < 3; ++k) {
          size_t used = 0;
          preds.push_back(std::stof(o.substr(pos), &used));
          pos += used + 1;
        }
        labels.push_back(static_cast<float>((*r.label_json)[1] - 'a'));
      }
    }
    const auto expected = task == "regression" ? train::RegressionMetrics(preds, labels)
                                               : train::MulticlassMetrics(preds, 3, labels);
    ASSERT_EQ(expected.size(), w->performance.live.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(expected[i].name, w->performance.live[i].first);
      EXPECT_NEAR(expected[i].value, w->performance.live[i].second,
                  1e-9 * std::max(1.0, std::fabs(expected[i].value)))
          << expected[i].name;
    }
    EXPECT_EQ(w->performance.labelled, 5000u);
  }
}

TEST(WindowProfileTest, EmptyProfileIsNotFound) {
  Fixture f;
  const ProfileLayout layout(f.ref, f.info);
  auto w = EvaluateProfile(layout, EmptyProfile(layout), Query(), {});
  EXPECT_EQ(w.status().code(), StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------
// Stored form (EncodeProfile / DecodeProfile)

std::vector<uint64_t> Bits(const std::vector<double>& v) {
  std::vector<uint64_t> out;
  for (double d : v) out.push_back(std::bit_cast<uint64_t>(d));
  return out;
}

void ExpectSameValues(const ValueCounts& a, const ValueCounts& b, const std::string& what) {
  EXPECT_EQ(a.count(), b.count()) << what;
  EXPECT_EQ(Bits(a.exact_values()), Bits(b.exact_values())) << what;
  EXPECT_EQ(a.grid_counts(), b.grid_counts()) << what;
}

void ExpectSameColumn(const ColumnProfile& a, const ColumnProfile& b, const std::string& what) {
  ExpectSameValues(a.values, b.values, what);
  EXPECT_EQ(a.missing, b.missing) << what;
  EXPECT_EQ(a.categories.counts, b.categories.counts) << what;
  EXPECT_EQ(a.categories.missing, b.categories.missing) << what;
}

void ExpectSameProfile(const WindowProfile& a, const WindowProfile& b) {
  EXPECT_EQ(a.exact_limit, b.exact_limit);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.unreadable, b.unreadable);
  EXPECT_EQ(a.first_ms, b.first_ms);
  EXPECT_EQ(a.last_ms, b.last_ms);
  ASSERT_EQ(a.inputs.size(), b.inputs.size());
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    ExpectSameColumn(a.inputs[i], b.inputs[i], "input " + std::to_string(i));
  }
  ExpectSameColumn(a.prediction, b.prediction, "prediction");
  EXPECT_EQ(a.endpoints, b.endpoints);
  ExpectSameValues(a.latency_us, b.latency_us, "latency");
  EXPECT_EQ(a.labelled, b.labelled);
  EXPECT_EQ(a.unmatched_labels, b.unmatched_labels);
  EXPECT_EQ(a.scored, b.scored);
  EXPECT_EQ(std::bit_cast<uint64_t>(a.log_loss_sum), std::bit_cast<uint64_t>(b.log_loss_sum));
  ExpectSameValues(a.scores, b.scores, "scores");
  ExpectSameValues(a.positives, b.positives, "positives");
  ExpectSameValues(a.negatives, b.negatives, "negatives");
  EXPECT_EQ(a.confusion, b.confusion);
  for (auto [x, y] : {std::pair(a.sse, b.sse), std::pair(a.sae, b.sae),
                      std::pair(a.label_mean, b.label_mean), std::pair(a.label_m2, b.label_m2)}) {
    EXPECT_EQ(std::bit_cast<uint64_t>(x), std::bit_cast<uint64_t>(y));
  }
}

// The blob with its checksum recomputed (the test's way past the CRC to the
// decoder's own checks): bytes 4..7 are the CRC-32 of the body after them.
std::string Resigned(std::string blob) {
  if (blob.size() < 8) return blob;
  const uint32_t crc = static_cast<uint32_t>(
      crc32_z(0, reinterpret_cast<const unsigned char*>(blob.data() + 8), blob.size() - 8));
  for (int i = 0; i < 4; ++i) blob[4 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return blob;
}

// Profiles with every kind of part: all exact, all gridded, and mixed (n/2
// values kept exactly: the inputs, scores and latencies gridded, the
// labelled scores exact), of n rows with labels.
std::vector<WindowProfile> StorableProfiles(const ProfileLayout& layout,
                                            const model::PackageInfo& info, size_t n = 3000) {
  const auto rows = Rows(info, n, 0.5, 21);
  std::vector<WindowProfile> out;
  for (uint64_t limit : {uint64_t{10'000}, uint64_t{0}, uint64_t{n / 2}}) {
    ProfileOptions o;
    o.exact_limit = limit;
    out.push_back(ProfileOf(layout, rows, o));
  }
  return out;
}

TEST(WindowProfileTest, StoredFormDecodesToTheSameProfile) {
  for (std::string task : {"binary", "multiclass", "regression"}) {
    SCOPED_TRACE(task);
    Fixture f(task);
    const ProfileLayout layout(f.ref, f.info);
    for (const WindowProfile& p : StorableProfiles(layout, f.info)) {
      SCOPED_TRACE(p.exact_limit);
      const std::string blob = EncodeProfile(p, layout);
      auto back = DecodeProfile(blob, layout);
      ASSERT_TRUE(back.ok()) << back.status().message();
      ExpectSameProfile(p, *back);
      EXPECT_EQ(EncodeProfile(*back, layout), blob);
      // The decoded profile evaluates as the original.
      auto a = EvaluateProfile(layout, p, Query(), {});
      auto b = EvaluateProfile(layout, *back, Query(), {});
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_EQ(a->ToJson(), b->ToJson());
    }
  }
  // The profiles hold what they are meant to: exact and gridded parts,
  // categories, and each task's performance part.
  Fixture f;
  const ProfileLayout layout(f.ref, f.info);
  const std::vector<WindowProfile> ps = StorableProfiles(layout, f.info);
  const WindowProfile& mixed = ps[2];
  EXPECT_FALSE(mixed.inputs[0].values.grid_counts().empty());
  EXPECT_FALSE(mixed.scores.grid_counts().empty());
  EXPECT_FALSE(mixed.positives.exact_values().empty());
  EXPECT_TRUE(mixed.positives.grid_counts().empty());
  EXPECT_FALSE(ps[0].inputs[0].values.exact_values().empty());
  EXPECT_GT(mixed.inputs[0].missing, 0u);
  EXPECT_EQ(mixed.inputs[1].categories.counts.size(), 3u);
  EXPECT_GT(mixed.scored, 0u);
  EXPECT_GT(mixed.log_loss_sum, 0);
  Fixture reg("regression");
  const ProfileLayout reg_layout(reg.ref, reg.info);
  EXPECT_GT(StorableProfiles(reg_layout, reg.info)[1].label_m2, 0);
}

TEST(WindowProfileTest, DamagedStoredFormsAreRefused) {
  Fixture f;
  const ProfileLayout layout(f.ref, f.info);
  // A mixed profile of 300 rows (the loops below decode it once per byte).
  const WindowProfile p = StorableProfiles(layout, f.info, 300)[2];
  ASSERT_FALSE(p.inputs[0].values.grid_counts().empty());
  ASSERT_FALSE(p.positives.exact_values().empty());
  const std::string blob = EncodeProfile(p, layout);
  // Every truncation, and a byte too many.
  for (size_t n = 0; n < blob.size(); ++n) {
    auto r = DecodeProfile(std::string_view(blob).substr(0, n), layout);
    ASSERT_FALSE(r.ok()) << "truncated to " << n;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  for (size_t n = 8; n < blob.size(); n += 97) {  // past the checksum too
    ASSERT_FALSE(DecodeProfile(Resigned(blob.substr(0, n)), layout).ok()) << n;
  }
  EXPECT_FALSE(DecodeProfile(blob + '\0', layout).ok());
  EXPECT_FALSE(DecodeProfile(Resigned(blob + '\0'), layout).ok());
  // Every byte flipped: the checksum catches it. Past the checksum, the
  // decoder refuses what does not fit together and never reads out of
  // bounds; what it accepts re-encodes to the same bytes.
  size_t refused = 0, accepted = 0;
  for (size_t i = 0; i < blob.size(); ++i) {
    std::string bad = blob;
    bad[i] = static_cast<char>(bad[i] ^ (i % 2 == 0 ? 0xff : 0x01));
    ASSERT_FALSE(DecodeProfile(bad, layout).ok()) << "byte " << i;
    if (i < 8) continue;
    auto r = DecodeProfile(Resigned(bad), layout);
    if (r.ok()) {
      ++accepted;
      ASSERT_EQ(EncodeProfile(*r, layout), Resigned(bad)) << "byte " << i;
    } else {
      ++refused;
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(accepted, 0u);  // values and sums can take any bits
  // A length that does not fit is refused before anything is allocated:
  // the first input's exact-value count (body offset 60) set to 2^32 - 1.
  std::string huge = blob;
  for (int i = 0; i < 4; ++i) huge[8 + 60 + i] = '\xff';
  auto r = DecodeProfile(Resigned(huge), layout);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("do not fit"), std::string::npos) << r.status().message();
  // Garbage, another version.
  EXPECT_FALSE(DecodeProfile("", layout).ok());
  EXPECT_FALSE(DecodeProfile(std::string(64, '\0'), layout).ok());
  std::string v2 = blob;
  v2[3] = 2;
  r = DecodeProfile(v2, layout);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("version 2"), std::string::npos) << r.status().message();
}

TEST(WindowProfileTest, StoredFormsOfAnotherLayoutAreRefused) {
  Fixture binary;
  const ProfileLayout layout(binary.ref, binary.info);
  const std::string blob = EncodeProfile(StorableProfiles(layout, binary.info)[1], layout);
  Fixture regression("regression");
  const ProfileLayout other(regression.ref, regression.info);
  auto r = DecodeProfile(blob, other);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("another layout"), std::string::npos);
  // Same task and columns, another reference: its grid differs.
  Fixture shifted;
  shifted.ref.columns[0].bins.edges[0] += 0.5;
  const ProfileLayout moved(shifted.ref, shifted.info);
  EXPECT_FALSE(DecodeProfile(blob, moved).ok());
  EXPECT_TRUE(DecodeProfile(blob, layout).ok());
  // Same bins and count, other reference values (e.g. the reference profiled
  // again on other data): the grid cut from them differs.
  Fixture resampled;
  auto& sorted = resampled.ref.columns[0].numeric.sorted;
  ASSERT_GT(sorted.size(), 10u);
  for (size_t i = 1; i + 1 < sorted.size(); ++i)
    sorted[i] = sorted[i] * 0.75 + sorted[i - 1] * 0.25;
  const ProfileLayout redone(resampled.ref, resampled.info);
  EXPECT_FALSE(DecodeProfile(blob, redone).ok());
}

// Forms the encoder never writes are refused even with a valid checksum:
// more exact values than the profile's limit, exact and gridded values in
// one part, a category counted 0 times.
TEST(WindowProfileTest, StoredFormsTheEncoderNeverWritesAreRefused) {
  Fixture f;
  const ProfileLayout layout(f.ref, f.info);
  WindowProfile exact = StorableProfiles(layout, f.info, 300)[0];
  ASSERT_FALSE(exact.inputs[0].values.exact_values().empty());
  ASSERT_TRUE(DecodeProfile(EncodeProfile(exact, layout), layout).ok());
  exact.exact_limit = 10;
  auto r = DecodeProfile(EncodeProfile(exact, layout), layout);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("the limit is 10"), std::string::npos)
      << r.status().message();

  WindowProfile both = StorableProfiles(layout, f.info, 300)[2];
  // An exact part (the positives' scores) given a gridded count as well:
  // written by hand after the encoder's own bytes would not do it.
  const ValueCounts& pos = both.positives;
  ASSERT_FALSE(pos.exact_values().empty());
  ASSERT_TRUE(pos.grid_counts().empty());
  const std::string blob = EncodeProfile(both, layout);
  // The positives' part is followed by the negatives', the confusion matrix
  // and four doubles; find it by its bytes: count, exact count, values, then
  // a zero grid count.
  std::string part;
  auto put64 = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) part.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) part.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  put64(pos.count());
  put32(static_cast<uint32_t>(pos.exact_values().size()));
  for (double d : pos.exact_values()) put64(std::bit_cast<uint64_t>(d));
  const size_t at = blob.find(part);
  ASSERT_NE(at, std::string::npos);
  const size_t grid_at = at + part.size();
  ASSERT_EQ(blob.substr(grid_at, 4), std::string(4, '\0'));
  // One grid entry (code 0, count 1) and the total raised by one.
  std::string edited = blob.substr(0, at);
  std::string raised;
  {
    std::string saved = part;
    part.clear();
    put64(pos.count() + 1);
    raised = part + saved.substr(8);
    part.clear();
    put32(1);
    raised += part;
    part.clear();
    for (int i = 0; i < 4; ++i) part.push_back('\0');  // code 0
    put64(1);
    raised += part;
  }
  edited += raised + blob.substr(grid_at + 4);
  r = DecodeProfile(Resigned(edited), layout);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exact and gridded"), std::string::npos)
      << r.status().message();

  // A category counted 0 times.
  WindowProfile zero = StorableProfiles(layout, f.info, 300)[0];
  ASSERT_FALSE(zero.inputs[1].categories.counts.empty());
  zero.inputs[1].categories.counts["zz-never"] = 0;
  r = DecodeProfile(EncodeProfile(zero, layout), layout);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("counted 0 times"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace keel::monitor
