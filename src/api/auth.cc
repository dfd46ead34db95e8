// Optional authentication: bearer tokens and HTTP Basic from a credentials
// file, with read-only and read-write roles.
#include <fstream>
#include <sstream>

#include "keel/api/app.h"
#include "keel/core/util.h"

namespace keel::api {
namespace {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

Status LoadCredentials(App& app) {
  const auto& path = app.options_.auth.tokens_file;
  std::ifstream in(path);
  if (!in) return InvalidArgument("cannot read auth tokens file " + path.string());
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    std::string name, role, secret, extra;
    if (!(fields >> name)) continue;
    if (!(fields >> role >> secret) || (fields >> extra)) {
      return InvalidArgument(path.string() + ":" + std::to_string(line_no) +
                             ": expected 'name role secret'");
    }
    Role r;
    if (role == "read") {
      r = Role::kRead;
    } else if (role == "write") {
      r = Role::kWrite;
    } else {
      return InvalidArgument(path.string() + ":" + std::to_string(line_no) + ": unknown role '" +
                             role + "' (expected read or write)");
    }
    app.credentials_.push_back({name, r, secret});
  }
  if (app.credentials_.empty()) {
    return InvalidArgument("auth tokens file " + path.string() + " defines no credentials");
  }
  return OkStatus();
}

Status App::Authorize(const Route& route, Request& request) const {
  if (!options_.auth.enabled || route.access == Access::kOpen) {
    request.principal = Principal{options_.anonymous_name, Role::kWrite};
    return OkStatus();
  }
  std::string_view header = request.authorization;
  const Credential* found = nullptr;
  if (header.starts_with("Bearer ")) {
    std::string_view token = header.substr(7);
    for (const auto& c : credentials_) {
      if (ConstantTimeEquals(c.secret, token)) found = &c;
    }
  } else if (header.starts_with("Basic ")) {
    auto decoded = Base64Decode(header.substr(6));
    if (decoded) {
      size_t colon = decoded->find(':');
      if (colon != std::string::npos) {
        std::string_view user = std::string_view(*decoded).substr(0, colon);
        std::string_view pass = std::string_view(*decoded).substr(colon + 1);
        for (const auto& c : credentials_) {
          if (c.name == user && ConstantTimeEquals(c.secret, pass)) found = &c;
        }
      }
    }
  }
  if (found == nullptr) {
    return Unauthenticated(header.empty()
                               ? "You are not authenticated. Please provide a bearer token or "
                                 "basic credentials."
                               : "Invalid credentials.");
  }
  request.principal = Principal{found->name, found->role};
  if (route.access == Access::kWrite && found->role != Role::kWrite) {
    return PermissionDenied("Permission denied: user '" + found->name +
                            "' has read-only access.");
  }
  return OkStatus();
}

}  // namespace keel::api
