#include "src/api/params.h"

#include <charconv>
#include <cmath>

namespace keel::api::internal {

Status MissingParameter(std::string_view key) {
  return InvalidArgument("Missing value for required parameter '" + std::string(key) +
                         "'. See the API docs for more information about request parameters.");
}

Result<Params> Params::From(const Request& request) {
  Params p;
  p.request_ = &request;
  bool from_query = request.method == "GET" || (request.body.empty() && request.method != "POST" &&
                                                request.method != "PATCH");
  if (!from_query) {
    std::string_view body = request.body;
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) body = "{}";
    auto doc = ParseJsonObject(body);
    if (!doc.ok()) return doc.status().WithMlflowCode("MALFORMED_REQUEST");
    p.doc_ = std::move(*doc);
  }
  return p;
}

Result<std::optional<std::string>> Params::Str(std::string_view key) const {
  if (doc_) return JsonString(doc_->root(), key);
  auto it = request_->query.find(std::string(key));
  if (it == request_->query.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Result<std::string> Params::RequiredStr(std::string_view key) const {
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> v, Str(key));
  if (!v || v->empty()) return MissingParameter(key);
  return *v;
}

Result<std::optional<int64_t>> Params::Int(std::string_view key) const {
  if (doc_) return JsonInt64(doc_->root(), key);
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> s, Str(key));
  if (!s) return std::optional<int64_t>();
  int64_t v;
  auto res = std::from_chars(s->data(), s->data() + s->size(), v);
  if (s->empty() || res.ec != std::errc() || res.ptr != s->data() + s->size()) {
    return InvalidArgument("Invalid value '" + *s + "' for parameter '" + std::string(key) +
                           "': expected an integer");
  }
  return std::optional<int64_t>(v);
}

Result<std::optional<double>> Params::Double(std::string_view key) const {
  if (doc_) return JsonDouble(doc_->root(), key);
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> s, Str(key));
  if (!s) return std::optional<double>();
  if (*s == "NaN") return std::optional<double>(std::nan(""));
  double v;
  auto res = std::from_chars(s->data(), s->data() + s->size(), v);
  if (s->empty() || res.ec != std::errc() || res.ptr != s->data() + s->size()) {
    return InvalidArgument("Invalid value '" + *s + "' for parameter '" + std::string(key) +
                           "': expected a number");
  }
  return std::optional<double>(v);
}

Result<std::optional<bool>> Params::Bool(std::string_view key) const {
  if (doc_) return JsonBool(doc_->root(), key);
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> s, Str(key));
  if (!s) return std::optional<bool>();
  if (*s == "true" || *s == "True" || *s == "1") return std::optional<bool>(true);
  if (*s == "false" || *s == "False" || *s == "0") return std::optional<bool>(false);
  return InvalidArgument("Invalid value '" + *s + "' for parameter '" + std::string(key) +
                         "': expected a boolean");
}

Result<std::vector<std::string>> Params::StrList(std::string_view key) const {
  std::vector<std::string> out;
  if (!doc_) {
    auto [lo, hi] = request_->query.equal_range(std::string(key));
    for (auto it = lo; it != hi; ++it) out.push_back(it->second);
    return out;
  }
  simdjson::dom::element e;
  if (doc_->root()[key].get(e) || e.is_null()) return out;
  simdjson::dom::array arr;
  if (e.get_array().get(arr)) {
    std::string_view sv;
    if (!e.get_string().get(sv)) {  // a lone string is a one-element list
      out.emplace_back(sv);
      return out;
    }
    return InvalidArgument("Invalid value for parameter '" + std::string(key) +
                           "': expected a list of strings");
  }
  for (auto item : arr) {
    std::string_view sv;
    if (item.get_string().get(sv)) {
      return InvalidArgument("Invalid value for parameter '" + std::string(key) +
                             "': expected a list of strings");
    }
    out.emplace_back(sv);
  }
  return out;
}

Result<std::vector<simdjson::dom::element>> Params::Objects(std::string_view key) const {
  std::vector<simdjson::dom::element> out;
  if (!doc_) return out;
  simdjson::dom::element e;
  if (doc_->root()[key].get(e) || e.is_null()) return out;
  simdjson::dom::array arr;
  if (e.get_array().get(arr)) {
    return InvalidArgument("Invalid value for parameter '" + std::string(key) +
                           "': expected a list");
  }
  for (auto item : arr) {
    if (!item.is_object()) {
      return InvalidArgument("Invalid value for parameter '" + std::string(key) +
                             "': expected a list of objects");
    }
    out.push_back(item);
  }
  return out;
}

Result<std::vector<tracking::Tag>> Params::Tags(std::string_view key) const {
  KEEL_ASSIGN_OR_RETURN(auto objects, Objects(key));
  std::vector<tracking::Tag> out;
  out.reserve(objects.size());
  for (size_t i = 0; i < objects.size(); ++i) {
    std::string field = std::string(key) + "[" + std::to_string(i) + "]";
    KEEL_ASSIGN_OR_RETURN(auto k, JsonString(objects[i], "key"));
    KEEL_ASSIGN_OR_RETURN(auto v, JsonString(objects[i], "value"));
    if (!k) return MissingParameter(field + ".key");
    out.push_back({std::move(*k), v.value_or("")});
  }
  return out;
}

}  // namespace keel::api::internal
