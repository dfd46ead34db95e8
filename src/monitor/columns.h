// Table columns as the drift statistics read them. Internal to src/monitor.
#pragma once

#include "keel/data/table.h"
#include "keel/monitor/stats.h"

namespace keel::monitor::internal {

// Numeric columns are numeric; categorical and boolean columns categorical.
ColumnKind KindOf(data::ColumnType type);
// Category counts of a categorical column (its dictionary strings) or of a
// boolean column ("false"/"true"); missing rows counted.
CategoricalSample CategoricalOf(const data::Column& column);

}  // namespace keel::monitor::internal
