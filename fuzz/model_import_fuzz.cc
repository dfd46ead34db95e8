// libFuzzer target for one model importer (-DKEEL_FUZZ_FORMAT="name"; without
// it, the input's first byte picks the importer). A successful import is compiled
// and evaluated on a few rows (NaN, zeros, large and negative values), so the
// builder's checks are exercised together with the evaluator.
//
//   scripts/fuzz.sh 600          # every target for 10 minutes
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "keel/model/formats.h"
#include "keel/model/predictor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
#ifdef KEEL_FUZZ_FORMAT
  const std::string_view format = KEEL_FUZZ_FORMAT;
#else
  if (bytes.empty()) return 0;
  const auto& formats = keel::model::ModelFormats();
  const std::string_view format = formats[static_cast<uint8_t>(bytes[0]) % formats.size()].name;
  bytes.remove_prefix(1);
#endif
  keel::model::BuilderLimits limits;
  limits.max_total_nodes = 1 << 20;  // keep each input cheap
  limits.max_features = 1 << 16;
  auto model = keel::model::ImportModel(bytes, format, {}, limits);
  if (!model.ok()) return 0;
  auto predictor = keel::model::Predictor::Compile(*model);
  if (!predictor.ok()) return 0;
  const size_t nf = static_cast<size_t>(predictor->num_features());
  std::vector<float> rows(nf * 4);
  for (size_t i = 0; i < nf; ++i) {
    rows[i] = std::nanf("");
    rows[nf + i] = 0.0f;
    rows[2 * nf + i] = 1e30f;
    rows[3 * nf + i] = -3.5f;
  }
  std::vector<float> out(4 * static_cast<size_t>(predictor->num_outputs()));
  predictor->PredictBatch(rows.data(), 4, out.data());
  for (size_t r = 0; r < 4; ++r) predictor->PredictRow(rows.data() + r * nf, out.data());
  return 0;
}
