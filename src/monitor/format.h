// Number and HTML formatting shared by the monitoring reports. Internal to src/monitor.
#pragma once

#include <string>
#include <string_view>

namespace keel {
class JsonWriter;
}

namespace keel::monitor::internal {

// A finite number, or null (JSON has no NaN or infinity).
void JsonNumber(JsonWriter& w, double v);

// printf-formatted (default %.4g), or "-" for NaN.
std::string Num(double v, const char* format = "%.4g");
// 100 * share with one decimal and "%", or "-" for NaN.
std::string Percent(double share);
// <, >, & and " escaped for HTML text and attribute values.
std::string HtmlEscape(std::string_view s);

}  // namespace keel::monitor::internal
