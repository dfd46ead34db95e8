// File: keel/monitor/history.h
//
// The monitoring history of a model as time series for people: the stored
// window reports (ListStoredWindows) rendered as small inline-SVG line charts
// (dataset drift share, performance realised and estimated against the
// validation value, p99 latency, volume, and the drift score of the columns
// that came closest to or went past their thresholds, each with its
// threshold). `keel monitor --history 7d --report r.html` appends it to the
// window's report.
//
//   KEEL_ASSIGN_OR_RETURN(auto windows, keel::monitor::ListStoredWindows(db, {.model = "churn"}));
//   KEEL_ASSIGN_OR_RETURN(std::string html, keel::monitor::HistoryHtml(windows, 12));
//
// The output is an HTML fragment (no script, no network) whose size grows
// with the number of windows and charts, not with rows.
//
// Threads: a pure function.
#pragma once

#include <span>
#include <string>

#include "keel/core/result.h"
#include "keel/monitor/alerts.h"

namespace keel::monitor {

// A stored report that is not a JSON object shows as a gap and is counted
// under the charts. Never fails today; Result leaves room for limits.
[[nodiscard]] Result<std::string> HistoryHtml(std::span<const StoredWindow> windows,
                                              size_t max_columns = 12);

}  // namespace keel::monitor
