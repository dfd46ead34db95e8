// Internal: MLflow-style generated run names ("melodic-fish-341").
#pragma once

#include <string>

namespace keel::tracking::internal {

std::string GenerateRunName();

}  // namespace keel::tracking::internal
