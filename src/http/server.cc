#include "keel/http/server.h"

#include <utility>  // before asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <csignal>
#include <future>
#include <iostream>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "keel/core/util.h"

namespace keel::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;

namespace {

void SplitTarget(std::string_view target, api::Request& req, bool& bad) {
  size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  auto path = UrlDecode(raw_path, false);
  if (!path) {
    bad = true;
    return;
  }
  req.path = std::move(*path);
  if (!IsValidUtf8(req.path)) {
    bad = true;
    return;
  }
  if (q == std::string_view::npos) return;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    auto key = UrlDecode(pair.substr(0, eq), true);
    auto value = UrlDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!key || !value || !IsValidUtf8(*key) || !IsValidUtf8(*value)) {
      bad = true;
      return;
    }
    if (!key->empty()) req.query.emplace(std::move(*key), std::move(*value));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
}

}  // namespace

struct Server::Impl {
  api::App& app;
  ServerOptions options;
  // One single-threaded io_context per worker thread: a connection lives on one
  // thread for its whole life, so no handler hops threads (no futex ping-pong).
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::unique_ptr<tcp::acceptor> acceptor;  // on contexts[0]
  size_t next_context = 0;                  // used by the accept loop only
  std::vector<std::thread> threads;
  std::atomic<int> in_flight{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
  uint16_t bound_port = 0;
  std::mutex stop_mu;

  Impl(api::App& a, ServerOptions o) : app(a), options(std::move(o)) {}

  // Writes in pieces; the deadline is re-armed after each piece, so a large
  // download only fails when it stops making progress.
  template <class Body>
  asio::awaitable<bool> Write(beast::tcp_stream& stream, bhttp::response<Body>& res) {
    beast::error_code ec;
    bhttp::response_serializer<Body> serializer(res);
    while (!serializer.is_done()) {
      stream.expires_after(options.request_timeout);
      co_await bhttp::async_write_some(stream, serializer,
                                       asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return false;
    }
    co_return true;
  }

  // Reads the rest of a body, re-arming the deadline after each piece.
  template <class Parser>
  asio::awaitable<beast::error_code> ReadBody(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                              Parser& parser) {
    beast::error_code ec;
    while (!parser.is_done()) {
      stream.expires_after(options.request_timeout);
      co_await bhttp::async_read_some(stream, buffer, parser,
                                      asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    co_return ec;
  }

  asio::awaitable<bool> Send(beast::tcp_stream& stream, api::Response resp, unsigned version,
                             bool keep_alive) {
    if (stopping.load()) keep_alive = false;
    if (!resp.file.empty()) {
      bhttp::response<bhttp::file_body> res;
      res.version(version);
      res.result(static_cast<unsigned>(resp.status));
      beast::error_code ec;
      res.body().open(resp.file.c_str(), beast::file_mode::scan, ec);
      if (ec) {
        co_return co_await Send(stream, api::Response::Error(NotFound("cannot open artifact")),
                                version, keep_alive);
      }
      res.set(bhttp::field::content_type, resp.content_type);
      for (auto& [k, v] : resp.headers) res.set(k, v);
      res.keep_alive(keep_alive);
      res.prepare_payload();
      bool ok = co_await Write(stream, res);
      co_return ok&& keep_alive;
    }
    bhttp::response<bhttp::string_body> res;
    res.version(version);
    res.result(static_cast<unsigned>(resp.status));
    res.set(bhttp::field::content_type, resp.content_type);
    for (auto& [k, v] : resp.headers) res.set(k, v);
    res.keep_alive(keep_alive);
    res.body() = std::move(resp.body);
    res.prepare_payload();
    bool ok = co_await Write(stream, res);
    co_return ok&& keep_alive;
  }

  // One connection: read requests until the peer closes, a timeout, or an error.
  asio::awaitable<void> Session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    buffer.reserve(64 * 1024);  // Beast reads at most the free capacity per call
    bool keep_going = true;
    while (keep_going && !stopping.load()) {
      bhttp::request_parser<bhttp::empty_body> header;
      header.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      header.body_limit(std::numeric_limits<std::uint64_t>::max());
      beast::error_code ec;
      stream.expires_after(options.idle_timeout);
      co_await bhttp::async_read_header(stream, buffer, header,
                                        asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == bhttp::error::header_limit) {
          co_await Send(stream,
                        api::Response::Error(ResourceExhausted("request headers too large")), 11,
                        false);
        } else if (ec != bhttp::error::end_of_stream && ec != asio::error::eof &&
                   ec != beast::error::timeout && ec != asio::error::operation_aborted &&
                   ec != asio::error::connection_reset) {
          co_await Send(
              stream,
              api::Response::Error(InvalidArgument("malformed HTTP request: " + ec.message())), 11,
              false);
        }
        break;
      }
      // Stop() sets `stopping` then waits for in_flight == 0; with both seq_cst,
      // a request either sees `stopping` here and is not started, or is waited for.
      in_flight.fetch_add(1);
      if (stopping.load()) {
        in_flight.fetch_sub(1);
        break;
      }
      struct Done {
        std::atomic<int>& n;
        ~Done() { n.fetch_sub(1); }
      } done{in_flight};
      keep_going = co_await Handle(stream, buffer, header);
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  asio::awaitable<bool> Handle(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                               bhttp::request_parser<bhttp::empty_body>& header) {
    auto& h = header.get();
    unsigned version = h.version();
    bool keep_alive = h.keep_alive();
    api::Request req;
    req.method = std::string(h.method_string().data(), h.method_string().size());
    bool bad_target = false;
    SplitTarget(std::string_view(h.target().data(), h.target().size()), req, bad_target);
    auto content_type = h[bhttp::field::content_type];
    auto authorization = h[bhttp::field::authorization];
    req.content_type.assign(content_type.data(), content_type.size());
    req.authorization.assign(authorization.data(), authorization.size());
    bool has_body = header.content_length().value_or(0) > 0 || header.chunked();
    // Anything answered before reading the body closes the connection when a body is pending.
    std::string_view endpoint = "unmatched";
    auto reject = [&](const Status& s) -> asio::awaitable<bool> {
      app.CountRejected(endpoint, HttpStatusOf(s));
      co_await Send(stream, api::Response::ErrorFor(req.path, s), version, keep_alive && !has_body);
      co_return keep_alive && !has_body;
    };
    if (bad_target) {
      co_return co_await reject(
          InvalidArgument("malformed URL: bad percent-encoding or invalid UTF-8"));
    }

    api::RouteMatch match = app.Match(req.method, req.path);
    if (match.route == nullptr) {
      // Unknown endpoint: answered without reading a pending body, then closed.
      api::Response r = app.Dispatch(req);
      app.CountRejected(endpoint, r.status);
      co_await Send(stream, std::move(r), version, keep_alive && !has_body);
      co_return keep_alive && !has_body;
    }
    endpoint = match.route->pattern;
    Status auth = app.Authorize(*match.route, req);
    if (!auth.ok()) co_return co_await reject(auth);
    if (match.route->precheck) {
      req.tail = match.tail;
      Status pre = match.route->precheck(app, req);
      if (!pre.ok()) co_return co_await reject(pre);
    }

    // A declared length over the limit is refused before reading any of the body.
    uint64_t limit = match.route->body_mode == api::BodyMode::kToFile ? options.max_upload_bytes
                                                                      : options.max_body_bytes;
    if (header.content_length() && *header.content_length() > limit) {
      app.CountRejected(endpoint, 413);
      co_await Send(
          stream,
          api::Response::ErrorFor(
              req.path,
              ResourceExhausted("request body of " + std::to_string(*header.content_length()) +
                                " bytes exceeds the limit of " + std::to_string(limit) + " bytes")),
          version, false);
      co_return false;
    }

    beast::error_code ec;
    stream.expires_after(options.request_timeout);
    if (match.route->body_mode == api::BodyMode::kToFile) {
      bhttp::request_parser<bhttp::file_body> parser(std::move(header));
      parser.body_limit(options.max_upload_bytes);
      std::filesystem::path spool = app.spool_dir() / ("upload-" + RandomHex(12));
      parser.get().body().open(spool.c_str(), beast::file_mode::write, ec);
      if (ec) co_return co_await reject(Unavailable("cannot spool upload: " + ec.message()));
      ec = co_await ReadBody(stream, buffer, parser);
      // Durable before it is renamed into place (see LocalArtifactStore::Adopt).
      if (!ec && ::fsync(parser.get().body().file().native_handle()) != 0) {
        ec = beast::error_code(errno, boost::system::generic_category());
      }
      parser.get().body().close();
      if (ec) {
        std::error_code fs_ec;
        std::filesystem::remove(spool, fs_ec);
        if (ec == bhttp::error::body_limit) {
          co_await Send(stream,
                        api::Response::Error(ResourceExhausted("upload exceeds the size limit")),
                        version, false);
        }
        co_return false;
      }
      req.body_file = spool;
      api::Response resp = app.Run(match, req);
      std::error_code fs_ec;
      std::filesystem::remove(spool, fs_ec);  // no-op when the handler adopted it
      co_return co_await Send(stream, std::move(resp), version, keep_alive);
    }

    bhttp::request_parser<bhttp::string_body> parser(std::move(header));
    parser.body_limit(options.max_body_bytes);
    ec = co_await ReadBody(stream, buffer, parser);
    if (ec) {
      if (ec == bhttp::error::body_limit) {
        app.CountRejected(endpoint, 413);
        co_await Send(
            stream,
            api::Response::ErrorFor(
                req.path, ResourceExhausted("request body exceeds the limit of " +
                                            std::to_string(options.max_body_bytes) + " bytes")),
            version, false);
      }
      co_return false;
    }
    req.body = std::move(parser.get().body());
    api::Response resp = app.Run(match, req);
    co_return co_await Send(stream, std::move(resp), version, keep_alive);
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      beast::error_code ec;
      asio::io_context& target = *contexts[next_context++ % contexts.size()];
      tcp::socket socket =
          co_await acceptor->async_accept(target, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!acceptor->is_open()) co_return;
        // e.g. EMFILE: keep serving the connections we have, retry shortly.
        asio::steady_timer pause(acceptor->get_executor(), std::chrono::milliseconds(50));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(target, Session(std::move(socket)), asio::detached);
    }
  }
};

Server::Server(api::App& app, ServerOptions options)
    : impl_(std::make_unique<Impl>(app, std::move(options))) {
  int n = std::max(1, impl_->options.threads);
  for (int i = 0; i < n; ++i) {
    impl_->contexts.push_back(std::make_unique<asio::io_context>(1));
    impl_->work.push_back(asio::make_work_guard(*impl_->contexts.back()));
  }
  impl_->acceptor = std::make_unique<tcp::acceptor>(*impl_->contexts[0]);
}

Server::~Server() { Stop(); }

Status Server::Start() {
  // Every connection is a descriptor: allow as many as the hard limit lets
  // (the usual soft limit of 1024 is too few for thousands of keep-alive clients).
  if (rlimit lim{}; ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) return InvalidArgument("invalid host '" + impl_->options.host + "': " + ec.message());
  tcp::endpoint endpoint(address, impl_->options.port);
  auto& acc = *impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable("cannot listen on " + impl_->options.host + ":" +
                       std::to_string(impl_->options.port) + ": " + ec.message());
  }
  impl_->bound_port = acc.local_endpoint().port();
  asio::co_spawn(*impl_->contexts[0], impl_->Accept(), asio::detached);
  for (auto& ctx : impl_->contexts) {
    impl_->threads.emplace_back([c = ctx.get()] { c->run(); });
  }
  return OkStatus();
}

uint16_t Server::port() const { return impl_->bound_port; }

void Server::RunUntilSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  // The signals are blocked in every thread (see apps/keel main), so sigwait owns them.
  int sig = 0;
  sigwait(&set, &sig);
  Stop();
}

void Server::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped.exchange(true)) return;
  impl_->stopping = true;
  // Close the listener on its own thread and wait until it is closed.
  std::promise<void> closed;
  asio::post(*impl_->contexts[0], [this, &closed] {
    beast::error_code ec;
    impl_->acceptor->close(ec);
    closed.set_value();
  });
  if (!impl_->threads.empty()) closed.get_future().wait();
  // Let requests in flight finish.
  auto deadline = std::chrono::steady_clock::now() + impl_->options.drain_timeout;
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& ctx : impl_->contexts) ctx->stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace keel::http
