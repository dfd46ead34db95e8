// Internal: the built web dashboard (web/, bundled by web/build.mjs), embedded
// into the binary at build time by cmake/embed_dashboard.cmake.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace keel::api::internal {

struct DashboardAsset {
  std::string_view name;  // file name in the bundle, e.g. "app.js"
  const unsigned char* data;
  size_t size;
};

// Every file of the bundle, by name; empty when built with KEEL_DASHBOARD=OFF.
std::span<const DashboardAsset> DashboardAssets();

}  // namespace keel::api::internal
