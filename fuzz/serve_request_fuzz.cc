// libFuzzer target: the serving request decoders (keel/serve/requests.h) on
// arbitrary bodies, with a fixed small pipeline (state one-hot,
// account_length numeric, international_plan one-hot, flag boolean).
//
// The first byte picks the decoder and options; the rest is the body:
//   'p' DecodePredictBody            'i' DecodeInvocations, JSON
//   'c' DecodeInvocations, CSV       'v' DecodeV2Infer
//   't' InvocationsFormatOf on the first line, then DecodeInvocations on the
//       rest if the content type is accepted
// in lower case with want_raw, in upper case without; any other byte picks
// by its value, with reject_unknown_columns when its top bit is set and
// max_rows = 2 when bit 6 is clear. Seeds: tests/data/serve/requests/, each
// prefixed with its selector by scripts/fuzz.sh.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keel/data/pipeline.h"
#include "keel/serve/requests.h"

namespace {

const keel::data::FeaturePipeline& Fixed() {
  static const auto* p = [] {
    auto r = keel::data::FeaturePipeline::FromJson(
        R"({"keel_pipeline":1,"encoding":"one_hot","missing_markers":["","NA"],)"
        R"("columns":[{"name":"state","type":"categorical","categories":["KS","NY","OH"]},)"
        R"({"name":"account_length","type":"numeric"},)"
        R"({"name":"international_plan","type":"categorical","categories":["no","yes"]},)"
        R"({"name":"flag","type":"boolean"}]})");
    if (!r.ok()) std::abort();
    return new keel::data::FeaturePipeline(std::move(r).value());
  }();
  return *p;
}

// Checks the invariants every successful decode promises.
void Check(const keel::Status& s, const keel::serve::DecodedBatch& b,
           const keel::serve::DecodeOptions& o) {
  if (!s.ok()) {
    if (s.message().empty()) std::abort();
    return;
  }
  if (b.rows > o.max_rows) std::abort();
  if (b.features.size() != b.rows * b.num_features) std::abort();
  if (o.want_raw && b.raw_rows.size() != b.rows) std::abort();
  if (!o.want_raw && !b.raw_rows.empty()) std::abort();
  for (const std::string& raw : b.raw_rows) {
    if (raw.size() < 2 || raw.front() != '{' || raw.back() != '}') std::abort();
  }
  for (float f : b.features) {
    if (std::isinf(f)) std::abort();  // refused, never encoded
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using keel::serve::InvocationsFormat;
  const uint8_t sel = data[0];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  keel::serve::DecodeOptions o;
  int kind;
  switch (sel | 0x20) {
    case 'p':
      kind = 0;
      break;
    case 'i':
      kind = 1;
      break;
    case 'c':
      kind = 2;
      break;
    case 'v':
      kind = 3;
      break;
    case 't':
      kind = 4;
      break;
    default:
      kind = sel % 5;
      o.reject_unknown_columns = (sel & 0x80) != 0;
      if ((sel & 0x40) == 0) o.max_rows = 2;
  }
  o.want_raw = (sel & 0x20) != 0;

  const keel::data::FeaturePipeline& p = Fixed();
  keel::serve::DecodedBatch b;
  keel::Status s;
  switch (kind) {
    case 0:
      s = keel::serve::DecodePredictBody(body, p, o, &b);
      break;
    case 1:
      s = keel::serve::DecodeInvocations(InvocationsFormat::kJson, body, p, o, &b);
      break;
    case 2:
      s = keel::serve::DecodeInvocations(InvocationsFormat::kCsv, body, p, o, &b);
      break;
    case 3: {
      keel::serve::V2Request req;
      // The model's feature count: the pipeline's, or another for the
      // matrix form's shape checks.
      s = keel::serve::DecodeV2Infer(body, p, (sel & 0x80) ? 3 : p.num_features(), o, &b, &req);
      break;
    }
    default: {
      const size_t eol = body.find('\n');
      const std::string_view content_type = body.substr(0, eol);
      body = eol == std::string_view::npos ? std::string_view() : body.substr(eol + 1);
      auto format = keel::serve::InvocationsFormatOf(content_type);
      if (!format.ok()) return 0;
      s = keel::serve::DecodeInvocations(*format, body, p, o, &b);
    }
  }
  Check(s, b, o);
  return 0;
}
