// libFuzzer target: the monitoring inputs read from files or the store: a
// reference profile (.keelref, ReferenceProfile::Parse), an alert rules file
// (ParseAlertRules) and a stored window profile (DecodeProfile, the rest
// taken as its body after the layout's fingerprint, under a valid header and
// checksum, so the fuzzer reaches the decoder's own checks). The first byte picks the parser. A
// profile that parses must serialize back to the same bytes.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "keel/monitor/alerts.h"
#include "keel/monitor/reference.h"
#include "keel/monitor/window_profile.h"

namespace {

// A binary model's layout: a numeric input, a categorical one, its scores.
const keel::monitor::ProfileLayout& Layout() {
  static const auto* layout = [] {
    keel::data::Table t;
    std::vector<double> x;
    std::vector<std::string> tier;
    for (int i = 0; i < 200; ++i) {
      x.push_back(i % 37 * 0.5);
      tier.push_back(i % 3 == 0 ? "a" : "b");
    }
    (void)t.AddColumn(keel::data::Column::Numeric("x", x));
    (void)t.AddColumn(keel::data::Column::CategoricalFromText("tier", tier));
    auto* ref = new keel::monitor::ReferenceProfile(keel::monitor::BuildReference(t).value());
    auto* info = new keel::model::PackageInfo();
    info->task = "binary";
    info->classes = {"0", "1"};
    return new keel::monitor::ProfileLayout(*ref, *info);
  }();
  return *layout;
}

// The layout's fingerprint: the first 8 bytes of a stored profile's body,
// prepended to the fuzzer's bytes so they reach the checks after it.
const std::string& Fingerprint() {
  static const std::string bytes =
      keel::monitor::EncodeProfile(keel::monitor::EmptyProfile(Layout()), Layout()).substr(8, 8);
  return bytes;
}

void DecodeStored(std::string_view rest) {
  const std::string body = Fingerprint() + std::string(rest);
  std::string blob = "KWP\x01";
  const uint32_t crc = static_cast<uint32_t>(
      crc32_z(0, reinterpret_cast<const unsigned char*>(body.data()), body.size()));
  for (int i = 0; i < 4; ++i) blob.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  blob.append(body);
  auto profile = keel::monitor::DecodeProfile(blob, Layout());
  if (profile.ok() && keel::monitor::EncodeProfile(*profile, Layout()) != blob) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 4 == 3) {
    DecodeStored(rest);
  } else if (data[0] % 2 == 0) {
    auto profile = keel::monitor::ReferenceProfile::Parse(rest, "fuzz.keelref");
    if (profile.ok() && profile->Serialize() != rest) __builtin_trap();
  } else {
    auto rules = keel::monitor::ParseAlertRules(rest, "fuzz.yaml");
    if (rules.ok()) {
      auto again = keel::monitor::ParseAlertRules(keel::monitor::AlertRulesToYaml(*rules), "again");
      if (!again.ok() || again->size() != rules->size()) __builtin_trap();
    }
  }
  return 0;
}
