#include "detail/http_routes.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <optional>
#include <vector>

#include <caf/error.hpp>
#include <caf/sec.hpp>
#include <nlohmann/json.hpp>

#include <tasker/actors/poller.hpp>

namespace tasker::actors::detail {

namespace {

using nlohmann::json;

const char* error_name(unsigned status) {
  switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "too_large";
    case 422: return "unprocessable";
    case 431: return "headers_too_large";
    case 501: return "not_implemented";
    case 503: return "unavailable";
    default: return "internal";
  }
}

/// Percent-decoding; `plus` turns '+' into a space (query strings). Empty on a bad escape.
std::optional<std::string> decode(std::string_view s, bool plus) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size())
        return std::nullopt;
      const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0)
        return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += plus && s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

/// A positive decimal integer of at most 18 digits.
std::optional<std::int64_t> positive_id(std::string_view s) {
  if (s.empty() || s.size() > 18)
    return std::nullopt;
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v <= 0)
    return std::nullopt;
  return v;
}

/// Constant-time for equal lengths, so the token cannot be guessed byte by
/// byte from timings (its length can; pick a long one).
bool same_secret(std::string_view given, std::string_view secret) {
  if (given.size() != secret.size())
    return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(given[i] ^ secret[i]);
  return diff == 0;
}

bool authorized(const http_config& cfg, const request_view& req) {
  if (cfg.token.empty())
    return true;
  const std::string_view value = req.authorization;
  constexpr std::string_view scheme = "bearer ";
  if (value.size() <= scheme.size())
    return false;
  for (std::size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(value[i])) != scheme[i])
      return false;
  return same_secret(value.substr(scheme.size()), cfg.token);
}

/// The body of POST /v1/tasks as a task_request, or the 400 that explains why not.
std::optional<answer> parse_task(std::string_view body, task_request& out) {
  auto j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded())
    return error_answer(400, "the body is not valid JSON");
  if (!j.is_object())
    return error_answer(400, "the body must be a JSON object");
  for (const auto& [key, _] : j.items())
    if (key != "namespace" && key != "name" && key != "version" && key != "context"
        && key != "idempotency_key" && key != "priority")
      return error_answer(400, "unknown field \"" + key
                                   + "\" (expected namespace, name, version, context, "
                                     "idempotency_key, priority)");
  auto text = [&](const char* key, std::string& field, bool required) -> std::optional<answer> {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required)
        return error_answer(400, std::string("\"") + key + "\" is required (a string)");
      return std::nullopt;
    }
    if (!it->is_string())
      return error_answer(400, std::string("\"") + key + "\" must be a string");
    field = it->get<std::string>();
    return std::nullopt;
  };
  if (auto bad = text("namespace", out.namespace_name, true))
    return bad;
  if (auto bad = text("name", out.name, true))
    return bad;
  if (auto bad = text("version", out.version, true))
    return bad;
  if (auto bad = text("idempotency_key", out.idempotency_key, false))
    return bad;
  if (auto it = j.find("context"); it != j.end() && !it->is_null()) {
    if (!it->is_object())
      return error_answer(400, "\"context\" must be a JSON object");
    out.context_json = it->dump();
  }
  if (auto it = j.find("priority"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer()
        || it->get<std::int64_t>() < std::numeric_limits<std::int32_t>::min()
        || it->get<std::int64_t>() > std::numeric_limits<std::int32_t>::max())
      return error_answer(400, "\"priority\" must be a 32-bit integer");
    out.priority = static_cast<std::int32_t>(it->get<std::int64_t>());
  }
  return std::nullopt;
}

/// The query of GET /v1/tasks as the core's list filter, or the 400 that explains why not.
std::optional<answer> parse_list_query(std::string_view query, std::string& filter_out) {
  json filter = json::object();
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty())
      continue;
    const auto eq = pair.find('=');
    const auto key = decode(pair.substr(0, eq), true);
    const auto value =
        decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!key || !value)
      return error_answer(400, "the query string has a bad percent-escape");
    if (*key == "state" || *key == "namespace") {
      if (!value->empty())
        filter[*key] = *value;
    } else if (*key == "after" || *key == "limit") {
      const auto n = positive_id(*value);
      if (!n && *value != "0")
        return error_answer(400, "\"" + *key + "\" must be a non-negative integer");
      filter[*key] = n ? *n : 0;
    } else {
      return error_answer(400, "unknown query parameter \"" + *key
                                   + "\" (expected state, namespace, after, limit)");
    }
  }
  filter_out = filter.dump();
  return std::nullopt;
}

std::string message_of(const caf::error& e) {
  const auto& ctx = e.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return caf::to_string(e);
}

}  // namespace

answer error_answer(unsigned status, const std::string& message, bool close) {
  answer a;
  a.status = status;
  a.body = json{{"error", error_name(status)}, {"message", message}}.dump();
  a.close = close;
  return a;
}

answer json_answer(unsigned status, const json& body) {
  answer a;
  a.status = status;
  a.body = body.dump();
  return a;
}

plan route_request(const http_config& cfg, const request_view& req) {
  plan p;
  const std::string_view target = req.target;
  const auto q = target.find('?');
  const auto path = target.substr(0, q);
  const auto query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  const std::string_view method = req.method;

  // Split "/v1/tasks/12/cancel" into its segments.
  std::vector<std::string_view> seg;
  for (std::size_t i = 1; i <= path.size();) {
    auto next = path.find('/', i);
    if (next == std::string_view::npos)
      next = path.size();
    seg.push_back(path.substr(i, next - i));
    i = next + 1;
  }
  auto is = [&](std::initializer_list<std::string_view> want) {
    return seg.size() == want.size() && std::equal(want.begin(), want.end(), seg.begin());
  };
  // Which route, and which method it takes.
  std::string_view allowed = "GET";
  const char* allow = "GET";
  if (path.empty() || path[0] != '/') {
    p.now = error_answer(400, "the request target must be a path");
    return p;
  } else if (is({"health"})) {
    p.what = route::health;
  } else if (is({"health", "live"})) {
    p.what = route::live;
  } else if (is({"health", "ready"})) {
    p.what = route::ready;
  } else if (is({"metrics"})) {
    p.what = route::metrics;
  } else if (is({"v1", "tasks"})) {
    p.what = method == "POST" ? route::create : route::list;
    allowed = method == "POST" ? "POST" : "GET";
    allow = "GET, POST";
  } else if (seg.size() == 3 && seg[0] == "v1" && seg[1] == "tasks") {
    p.what = route::status;
  } else if (seg.size() == 4 && seg[0] == "v1" && seg[1] == "tasks" && seg[3] == "cancel") {
    p.what = route::cancel;
    allowed = "POST";
    allow = "POST";
  } else if (seg.size() == 3 && seg[0] == "v1" && seg[1] == "signals") {
    p.what = route::signal;
    allowed = "POST";
    allow = "POST";
  } else {
    p.now = error_answer(404, "no route for " + std::string(path));
    return p;
  }
  const bool health = p.what == route::health || p.what == route::live || p.what == route::ready;
  if (!health && !authorized(cfg, req)) {
    p.now = error_answer(401, "a valid bearer token is required (Authorization: Bearer ...)");
    return p;
  }
  if (method != allowed) {
    p.now = error_answer(405, "use " + std::string(allow));
    p.now.allow = allow;
    return p;
  }
  switch (p.what) {
    case route::health:
    case route::live: p.now.body = R"({"status":"ok"})"; break;
    case route::ready: p.by = responder::ping; break;
    case route::metrics: p.by = responder::metrics; break;
    case route::create:
      if (auto bad = parse_task(req.body, p.task))
        p.now = std::move(*bad);
      else
        p.by = responder::submit;
      break;
    case route::list:
      if (auto bad = parse_list_query(query, p.text))
        p.now = std::move(*bad);
      else
        p.by = responder::list;
      break;
    case route::status:
    case route::cancel:
      if (auto id = positive_id(seg[2])) {
        p.id = *id;
        p.by = p.what == route::status ? responder::status : responder::cancel;
      } else {
        p.now = error_answer(400, "a task id is a positive integer, not \"" + std::string(seg[2])
                                      + "\"");
      }
      break;
    case route::signal:
      if (auto token = decode(seg[2], false); token && !token->empty()) {
        p.text = std::move(*token);
        p.body = std::string(req.body);
        p.by = responder::signal;
      } else {
        p.now = error_answer(400, "a signal token is a non-empty path segment");
      }
      break;
    case route::other: break;
  }
  return p;
}

answer from_error(const caf::error& e, route what, std::chrono::milliseconds waited) {
  if (e == caf::sec::request_timeout)
    return error_answer(503, "the worker did not answer within " + std::to_string(waited.count())
                                 + " ms");
  if (e == caf::sec::request_receiver_down)
    return error_answer(503, "the worker is stopping");
  const auto msg = message_of(e);
  if (what == route::ready)
    return error_answer(503, msg);
  switch (core_status(e)) {
    case TK_INVALID_ARGUMENT:
    case TK_MALFORMED_JSON: return error_answer(400, msg);
    case TK_VALIDATION: return error_answer(422, msg);
    // The path named a task that does not exist; a create named a pipeline
    // that does not (the request is well-formed, its content is not: 422).
    case TK_NOT_FOUND: return error_answer(what == route::create ? 422 : 404, msg);
    case TK_CONFLICT: return error_answer(409, msg);
    case TK_TOO_LARGE: return error_answer(413, msg);
    case TK_STORE_ERROR: return error_answer(503, msg);
    case TK_UNSUPPORTED: return error_answer(501, msg);
    default: return error_answer(500, msg);
  }
}

}  // namespace tasker::actors::detail
