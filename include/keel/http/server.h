// File: keel/http/server.h
//
// The HTTP transport (Boost.Beast over Asio): keep-alive, request size limits,
// streamed uploads and downloads, graceful shutdown. It only moves bytes: every
// request is matched, authorised and answered by api::App.
//
//   keel::http::ServerOptions opts;
//   opts.port = 5000;
//   keel::http::Server server(*app, opts);
//   KEEL_RETURN_IF_ERROR(server.Start());      // binds; server.port() is the real port
//   server.RunUntilSignal();                    // SIGINT/SIGTERM -> graceful stop
//
// Threads: Start() spawns `threads` I/O threads, each running its own
// single-threaded io_context; accepted connections are dealt round-robin and
// stay on their thread. Handlers run there and may block on the store, which
// delays only the connections sharing that thread. Stop() may be called from
// any thread: it closes the listener, lets requests in flight finish (up to
// drain_timeout) and joins the threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "keel/api/app.h"

namespace keel::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 5000;  // 0 = any free port
  int threads = 4;
  // Buffered JSON bodies larger than this are answered 413.
  size_t max_body_bytes = 64u << 20;
  // Streamed uploads (artifacts) larger than this are answered 413.
  uint64_t max_upload_bytes = uint64_t{64} << 30;
  size_t max_header_bytes = 64u << 10;
  std::chrono::seconds idle_timeout{75};     // keep-alive connection with no request
  std::chrono::seconds request_timeout{300};  // reading one request's body / writing a response
  std::chrono::seconds drain_timeout{30};     // graceful shutdown limit
};

class Server {
 public:
  Server(api::App& app, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Status Start();
  uint16_t port() const;
  // Blocks until SIGINT or SIGTERM, then stops gracefully.
  void RunUntilSignal();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::http
