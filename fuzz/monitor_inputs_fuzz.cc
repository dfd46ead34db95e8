// libFuzzer target: the monitoring inputs read from files: a reference
// profile (.keelref, ReferenceProfile::Parse) and an alert rules file
// (ParseAlertRules). The first byte picks the parser. A profile that parses
// must serialize back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "keel/monitor/alerts.h"
#include "keel/monitor/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
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
