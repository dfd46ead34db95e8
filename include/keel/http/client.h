// File: keel/http/client.h
//
// A small synchronous HTTP/1.1 client for talking to a remote keel server
// (the CLI's --tracking-uri mode). One connection per call.
//
//   KEEL_ASSIGN_OR_RETURN(auto client, keel::http::Client::FromUri("http://127.0.0.1:5000"));
//   keel::api::Request req{.method = "GET", .path = "/api/2.0/mlflow/experiments/get"};
//   req.query.emplace("experiment_id", "0");
//   KEEL_ASSIGN_OR_RETURN(keel::api::Response resp, client.Send(req));
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "keel/api/app.h"

namespace keel::http {

class Client {
 public:
  // http://host[:port][/prefix]; https is not supported (put a proxy in front).
  static Result<Client> FromUri(std::string_view uri);
  // Sends method, path (+ prefix), query, body, content type and authorization.
  // Transport failures are Unavailable; any HTTP status is returned as-is.
  // `extra_headers` are added as given (e.g. a webhook's signature); the
  // whole exchange must finish within `timeout`.
  Result<api::Response> Send(
      const api::Request& request,
      std::chrono::milliseconds timeout = std::chrono::seconds(120),
      const std::vector<std::pair<std::string, std::string>>& extra_headers = {}) const;

 private:
  std::string host_;
  std::string port_;
  std::string prefix_;
};

}  // namespace keel::http
