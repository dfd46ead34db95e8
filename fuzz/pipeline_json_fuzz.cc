// libFuzzer target: FeaturePipeline::FromJson on arbitrary bytes, and the
// serving hot path EncodeJsonObject on the rest of the input.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "keel/data/pipeline.h"

namespace {
const keel::data::FeaturePipeline& Fixed() {
  static const auto* p = [] {
    keel::data::Table t;
    (void)t.AddColumn(keel::data::Column::Numeric("age", {31, 45, 27}));
    (void)t.AddColumn(keel::data::Column::CategoricalFromText("state", {"KS", "OH", "NY"}));
    return new keel::data::FeaturePipeline(
        std::move(keel::data::FeaturePipeline::Fit(t, {"age", "state"})).value());
  }();
  return *p;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto parsed = keel::data::FeaturePipeline::FromJson(bytes);
  if (parsed.ok()) {
    std::vector<float> out(parsed->num_features() + 1);
    (void)parsed->EncodeJsonObject("{}", out.data());
  }
  std::vector<float> out(Fixed().num_features());
  (void)Fixed().EncodeJsonObject(bytes, out.data());
  return 0;
}
