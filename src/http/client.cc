#include "keel/http/client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "keel/core/util.h"

namespace keel::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

Result<Client> Client::FromUri(std::string_view uri) {
  constexpr std::string_view kHttp = "http://";
  if (!uri.starts_with(kHttp)) {
    return InvalidArgument("tracking URI must start with http:// (got '" + std::string(uri) + "')");
  }
  std::string_view rest = uri.substr(kHttp.size());
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  Client c;
  if (slash != std::string_view::npos) c.prefix_ = std::string(rest.substr(slash));
  while (!c.prefix_.empty() && c.prefix_.back() == '/') c.prefix_.pop_back();
  size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos && hostport.find(']') == std::string_view::npos) {
    c.host_ = std::string(hostport.substr(0, colon));
    c.port_ = std::string(hostport.substr(colon + 1));
  } else {
    c.host_ = std::string(hostport);
    c.port_ = "80";
  }
  if (c.host_.empty()) return InvalidArgument("tracking URI has no host: '" + std::string(uri) + "'");
  return c;
}

Result<api::Response> Client::Send(
    const api::Request& request, std::chrono::milliseconds timeout,
    const std::vector<std::pair<std::string, std::string>>& extra_headers) const {
  try {
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    auto results = resolver.resolve(host_, port_);
    stream.connect(results);
    std::string target = prefix_ + UrlEncode(request.path);
    char sep = '?';
    for (const auto& [k, v] : request.query) {
      target += sep;
      target += UrlEncode(k) + "=" + UrlEncode(v);
      sep = '&';
    }
    bhttp::request<bhttp::string_body> req;
    req.method_string(request.method);
    req.target(target);
    req.version(11);
    req.set(bhttp::field::host, host_);
    req.set(bhttp::field::user_agent, "keel-cli/" KEEL_VERSION);
    if (!request.authorization.empty()) req.set(bhttp::field::authorization, request.authorization);
    for (const auto& [name, value] : extra_headers) req.set(name, value);
    if (!request.body.empty()) {
      req.set(bhttp::field::content_type,
              request.content_type.empty() ? "application/json" : request.content_type);
      req.body() = request.body;
    }
    req.prepare_payload();
    bhttp::write(stream, req);
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(uint64_t{1} << 32);
    bhttp::read(stream, buffer, parser);
    auto& res = parser.get();
    api::Response out;
    out.status = static_cast<int>(res.result_int());
    auto ct = res[bhttp::field::content_type];
    out.content_type.assign(ct.data(), ct.size());
    out.body = std::move(res.body());
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return out;
  } catch (const std::exception& e) {
    return Unavailable("cannot reach keel server at " + host_ + ":" + port_ + ": " + e.what());
  }
}

}  // namespace keel::http
