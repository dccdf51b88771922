// The HTTP actor on real loopback sockets: a real worker on the memory:
// store behind it (or a real poller, for the cases that need a server
// configured by hand), and a raw-socket client, so that malformed and
// pipelined requests are exactly what the test writes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <doctest/doctest.h>

#include <tasker/actors/http_actor.hpp>
#include <tasker/actors/poller.hpp>
#include <tasker/runtime/worker.hpp>
#include <tasker/test/latch.hpp>

using namespace std::chrono_literals;
using tasker::json;

namespace {

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< names in lower case
  std::string body;
  json body_json() const { return json::parse(body, nullptr, false); }
};

/// One client connection with a receive timeout, so no case can hang.
class connection {
public:
  explicit connection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~connection() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  bool connected() const { return connected_; }

  void send(const std::string& data) {
    std::size_t done = 0;
    while (done < data.size()) {
      const auto n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0)
        return;
      done += static_cast<std::size_t>(n);
    }
  }

  /// The next response; nullopt when the server closed (or 5 s passed).
  std::optional<http_response> read() {
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill())
        return std::nullopt;
    http_response r;
    const std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    std::size_t pos = head.find("\r\n");
    const std::string status_line = head.substr(0, pos);
    r.status = std::stoi(status_line.substr(9, 3));
    while (pos != std::string::npos) {
      const auto start = pos + 2;
      pos = head.find("\r\n", start);
      const auto line = head.substr(start, pos == std::string::npos ? pos : pos - start);
      const auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    const auto length = static_cast<std::size_t>(std::stoul(r.headers["content-length"]));
    while (buf_.size() < length)
      if (!fill())
        return std::nullopt;
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }

  /// The next head alone (e.g. an interim "100 Continue"): its first line.
  std::optional<std::string> read_head() {
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill())
        return std::nullopt;
    auto line = buf_.substr(0, buf_.find("\r\n"));
    buf_.erase(0, end + 4);
    return line;
  }

  /// True when the server closes the connection within `within`.
  bool closed_by_server(std::chrono::milliseconds within) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(within.count())) <= 0)
      return false;
    char c;
    return ::recv(fd_, &c, 1, 0) <= 0;
  }

private:
  bool fill() {
    char chunk[4096];
    const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0)
      return false;
    buf_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::string request(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& extra_headers = "") {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers;
  if (!body.empty() || method == "POST")
    r +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

/// One request on a fresh connection.
http_response call(std::uint16_t port, const std::string& method, const std::string& target,
                   const std::string& body = "", const std::string& extra_headers = "") {
  connection c{port};
  REQUIRE(c.connected());
  c.send(request(method, target, body, extra_headers));
  auto r = c.read();
  REQUIRE(r.has_value());
  return *r;
}

std::string task_body(const std::string& name, const json& context = json::object(),
                      const std::string& key = "") {
  json j{{"namespace", "tests"}, {"name", name}, {"version", "1"}, {"context", context}};
  if (!key.empty())
    j["idempotency_key"] = key;
  return j.dump();
}

/// A worker with the HTTP API on an ephemeral loopback port: "double" runs
/// at once; "gate" waits until the test opens the gate (or 10 s pass).
struct served_worker {
  tasker::worker_config cfg;
  tasker::test::latch gate;
  tasker::test::latch two_gated{2};  ///< two "gate" steps have started
  std::atomic<int> doubled{0};
  std::unique_ptr<tasker::worker> w;

  explicit served_worker(const std::string& token = "", std::int64_t idle_ms = 30000) {
    cfg.store = "memory:";
    cfg.log_level = "error";
    cfg.threads = 2;
    cfg.http_port = 0;
    cfg.http_token = token;
    cfg.http_max_body = 4096;
    cfg.http_idle_timeout_ms = idle_ms;
    w = std::make_unique<tasker::worker>(cfg);
    w->handle("double", [this](tasker::step_context& ctx) {
      ++doubled;
      return tasker::success({{"x", 2 * ctx.input<std::int64_t>("x")}});
    });
    w->handle("gate", [this](tasker::step_context&) {
      two_gated.count_down();
      gate.wait_for(10s);
      return tasker::success();
    });
    for (const auto& [name, handler] : {std::pair{"quick", "double"}, std::pair{"slow", "gate"}}) {
      tasker::pipeline p{"tests", name, "1"};
      p.step("only", handler);
      w->register_pipeline(p);
    }
    w->start();
    port = w->http_port();
    REQUIRE(port != 0);
  }
  ~served_worker() {
    gate.count_down();
    w.reset();
  }
  std::uint16_t port = 0;
};

}  // namespace

TEST_CASE("a task goes through create, status, list and cancel over HTTP" * doctest::timeout(30)) {
  served_worker s;
  auto created = call(s.port, "POST", "/v1/tasks", task_body("slow"));
  REQUIRE(created.status == 201);
  CHECK(created.headers["content-type"] == "application/json");
  const auto id = created.body_json().at("id").get<std::int64_t>();
  CHECK(created.body_json().at("created") == true);

  auto status = call(s.port, "GET", "/v1/tasks/" + std::to_string(id));
  CHECK(status.status == 200);
  CHECK(status.body_json().at("id") == id);
  CHECK(status.body_json().at("steps").size() == 1);

  auto list = call(s.port, "GET", "/v1/tasks?namespace=tests&limit=10");
  CHECK(list.status == 200);
  REQUIRE(list.body_json().at("tasks").size() == 1);
  CHECK(list.body_json().at("tasks")[0].at("id") == id);
  CHECK(call(s.port, "GET", "/v1/tasks?namespace=nobody").body_json().at("tasks").empty());

  auto cancel = call(s.port, "POST", "/v1/tasks/" + std::to_string(id) + "/cancel");
  CHECK(cancel.status == 200);
  CHECK(cancel.body_json() == json{{"id", id}, {"state", "cancelled"}});
  CHECK(call(s.port, "GET", "/v1/tasks/" + std::to_string(id)).body_json().at("state")
        == "cancelled");
  // A finished task cannot be cancelled again.
  CHECK(call(s.port, "POST", "/v1/tasks/" + std::to_string(id) + "/cancel").status == 409);
}

TEST_CASE("a task created over HTTP runs, and a repeated idempotency key names the same task"
          * doctest::timeout(30)) {
  served_worker s;
  auto first = call(s.port, "POST", "/v1/tasks", task_body("quick", {{"x", 21}}, "order-7"));
  REQUIRE(first.status == 201);
  const auto id = first.body_json().at("id").get<std::int64_t>();
  auto again = call(s.port, "POST", "/v1/tasks", task_body("quick", {{"x", 21}}, "order-7"));
  CHECK(again.status == 200);
  CHECK(again.body_json() == json{{"id", id}, {"created", false}});
  CHECK(s.w->client().wait(id, 10s) == "complete");
  auto status = call(s.port, "GET", "/v1/tasks/" + std::to_string(id)).body_json();
  CHECK(status.at("steps")[0].at("result") == json{{"x", 42}});
  CHECK(s.doubled == 1);
}

TEST_CASE("bad requests get status codes that say what is wrong" * doctest::timeout(30)) {
  served_worker s;
  SUBCASE("unknown task id: 404") {
    auto r = call(s.port, "GET", "/v1/tasks/987654");
    CHECK(r.status == 404);
    CHECK(r.body_json().at("error") == "not_found");
    CHECK(call(s.port, "POST", "/v1/tasks/987654/cancel").status == 404);
  }
  SUBCASE("unknown route: 404; wrong method: 405 with Allow") {
    CHECK(call(s.port, "GET", "/v2/nothing").status == 404);
    auto r = call(s.port, "DELETE", "/v1/tasks");
    CHECK(r.status == 405);
    CHECK(r.headers["allow"] == "GET, POST");
  }
  SUBCASE("malformed JSON body: 400") {
    auto r = call(s.port, "POST", "/v1/tasks", "{\"namespace\": ");
    CHECK(r.status == 400);
    CHECK(r.body_json().at("message").get<std::string>().find("JSON") != std::string::npos);
  }
  SUBCASE("missing field, wrong type, unknown field, bad id, bad query: 400") {
    CHECK(call(s.port, "POST", "/v1/tasks", R"({"namespace":"tests","name":"quick"})").status
          == 400);
    CHECK(call(s.port, "POST", "/v1/tasks", task_body("quick", json::array())).status == 400);
    CHECK(call(s.port, "POST", "/v1/tasks",
               R"({"namespace":"tests","name":"quick","version":"1","ctx":{}})")
              .status
          == 400);
    CHECK(call(s.port, "GET", "/v1/tasks/abc").status == 400);
    CHECK(call(s.port, "GET", "/v1/tasks?limit=lots").status == 400);
    CHECK(call(s.port, "GET", "/v1/tasks?colour=red").status == 400);
    CHECK(call(s.port, "GET", "/v1/tasks?limit=5000").status == 400);  // the core's range
  }
  SUBCASE("unknown pipeline: 422") {
    auto r = call(s.port, "POST", "/v1/tasks", task_body("no-such-pipeline"));
    CHECK(r.status == 422);
  }
  SUBCASE("malformed request line: 400, then the connection closes") {
    connection c{s.port};
    c.send("GET /health HTTP/1.1 extra words\r\nHost: x\r\n\r\n");
    auto r = c.read();
    REQUIRE(r.has_value());
    CHECK(r->status == 400);
    CHECK(r->headers["connection"] == "close");
    CHECK(c.closed_by_server(2000ms));
  }
  SUBCASE("a body over the limit: 413 without reading it") {
    connection c{s.port};
    c.send("POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
           + std::string(1000, 'x'));
    auto r = c.read();
    REQUIRE(r.has_value());
    CHECK(r->status == 413);
    CHECK(c.closed_by_server(3000ms));
  }
  SUBCASE("a client that expects 100-continue gets it, then its answer") {
    connection c{s.port};
    const auto body = task_body("quick", {{"x", 3}, {"pad", std::string(2000, 'p')}});
    c.send("POST /v1/tasks HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: "
           + std::to_string(body.size()) + "\r\n\r\n");
    auto go_on = c.read_head();
    REQUIRE(go_on.has_value());
    CHECK(*go_on == "HTTP/1.1 100 Continue");
    c.send(body);
    auto r = c.read();
    REQUIRE(r.has_value());
    CHECK(r->status == 201);
  }
  SUBCASE("a body announced over the limit with 100-continue: 413 at once") {
    connection c{s.port};
    c.send("POST /v1/tasks HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
           "Content-Length: 100000\r\n\r\n");
    auto r = c.read();
    REQUIRE(r.has_value());
    CHECK(r->status == 413);
  }
  SUBCASE("a signal for an unknown token is 404, a payload that is not JSON 400") {
    auto unknown = call(s.port, "POST", "/v1/signals/1-1-0123456789abcdef0123456789abcdef", "{}");
    CHECK(unknown.status == 404);
    CHECK(unknown.body_json().at("error").is_string());
    CHECK(call(s.port, "POST", "/v1/signals/abc", "{\"approved\":").status == 400);
  }
}

TEST_CASE("with a token, everything but health needs it" * doctest::timeout(30)) {
  served_worker s{"s3cret-token"};
  CHECK(call(s.port, "GET", "/health").status == 200);
  CHECK(call(s.port, "GET", "/health/live").status == 200);
  CHECK(call(s.port, "GET", "/health/ready").status == 200);
  auto missing = call(s.port, "GET", "/v1/tasks");
  CHECK(missing.status == 401);
  CHECK(missing.headers["www-authenticate"] == "Bearer");
  CHECK(call(s.port, "GET", "/v1/tasks", "", "Authorization: Bearer wrong-token!\r\n").status
        == 401);
  CHECK(call(s.port, "GET", "/metrics").status == 401);
  CHECK(call(s.port, "POST", "/v1/tasks", "{not json", "").status == 401);  // before the body
  CHECK(call(s.port, "GET", "/v1/tasks", "", "Authorization: Bearer s3cret-token\r\n").status
        == 200);
  CHECK(call(s.port, "GET", "/metrics", "", "authorization: bearer s3cret-token\r\n").status
        == 200);
}

TEST_CASE("health answers, readiness asks the core, metrics count" * doctest::timeout(30)) {
  served_worker s;
  auto health = call(s.port, "GET", "/health");
  CHECK(health.status == 200);
  CHECK(health.body_json() == json{{"status", "ok"}});
  auto ready = call(s.port, "GET", "/health/ready");
  CHECK(ready.status == 200);
  CHECK(ready.body_json() == json{{"status", "ready"}});

  auto created = call(s.port, "POST", "/v1/tasks", task_body("quick", {{"x", 1}}));
  REQUIRE(created.status == 201);
  REQUIRE(s.w->client().wait(created.body_json().at("id").get<std::int64_t>(), 10s) == "complete");
  call(s.port, "GET", "/v1/tasks/424242");
  auto metrics = call(s.port, "GET", "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.headers["content-type"].rfind("text/plain", 0) == 0);
  const auto& text = metrics.body;
  CHECK(text.find("handler=\"double\",outcome=\"succeeded\"} 1\n") != std::string::npos);
  CHECK(text.find("# TYPE tasker_step_execution_duration_seconds histogram") != std::string::npos);
  CHECK(text.find("tasker_http_requests_total{route=\"health\",code=\"200\"} 1\n")
        != std::string::npos);
  CHECK(text.find("tasker_http_requests_total{route=\"create_task\",code=\"201\"} 1\n")
        != std::string::npos);
  CHECK(text.find("tasker_http_requests_total{route=\"task_status\",code=\"404\"} 1\n")
        != std::string::npos);
  CHECK(text.find("# TYPE tasker_http_requests_total counter") != std::string::npos);
}

TEST_CASE("pipelined requests are answered in order" * doctest::timeout(30)) {
  served_worker s;
  auto a = call(s.port, "POST", "/v1/tasks", task_body("slow")).body_json().at("id").get<int>();
  auto b = call(s.port, "POST", "/v1/tasks", task_body("slow")).body_json().at("id").get<int>();
  connection c{s.port};
  // Core calls and immediate answers mixed: the immediate ones are ready
  // first but must wait for their turn.
  c.send(request("GET", "/v1/tasks/" + std::to_string(a)) + request("GET", "/health")
         + request("GET", "/v1/tasks/999999") + request("GET", "/v1/tasks/" + std::to_string(b))
         + request("POST", "/v1/tasks", "{oops") + request("GET", "/health/live"));
  std::vector<int> codes;
  std::vector<json> bodies;
  for (int i = 0; i < 6; ++i) {
    auto r = c.read();
    REQUIRE(r.has_value());
    codes.push_back(r->status);
    bodies.push_back(r->body_json());
  }
  CHECK(codes == std::vector<int>{200, 200, 404, 200, 400, 200});
  CHECK(bodies[0].at("id") == a);
  CHECK(bodies[1] == json{{"status", "ok"}});
  CHECK(bodies[3].at("id") == b);
  // The connection stays open for more.
  c.send(request("GET", "/health"));
  auto more = c.read();
  REQUIRE(more.has_value());
  CHECK(more->status == 200);
}

TEST_CASE("the API answers while blocking handlers hold every scheduler thread"
          * doctest::timeout(30)) {
  served_worker s;  // two scheduler threads
  for (int i = 0; i < 2; ++i)
    REQUIRE(call(s.port, "POST", "/v1/tasks", task_body("slow")).status == 201);
  REQUIRE(s.two_gated.wait_for(20s));
  CHECK(call(s.port, "GET", "/health/ready").status == 200);
  CHECK(call(s.port, "GET", "/v1/tasks?state=running").body_json().at("tasks").size() == 2);
  CHECK(call(s.port, "POST", "/v1/tasks", task_body("quick", {{"x", 1}})).status == 201);
}

TEST_CASE("an idle connection is closed after the idle timeout" * doctest::timeout(30)) {
  served_worker s{"", 300};
  connection c{s.port};
  c.send(request("GET", "/health"));
  REQUIRE(c.read().has_value());
  const auto start = std::chrono::steady_clock::now();
  CHECK(c.closed_by_server(5000ms));
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= 250ms);
  CHECK(waited < 3000ms);
  // A connection that asked for nothing at all is closed too.
  connection quiet{s.port};
  CHECK(quiet.closed_by_server(5000ms));
}

TEST_CASE("Connection: close is honoured" * doctest::timeout(30)) {
  served_worker s;
  connection c{s.port};
  c.send(request("GET", "/health", "", "Connection: close\r\n"));
  auto r = c.read();
  REQUIRE(r.has_value());
  CHECK(r->headers["connection"] == "close");
  CHECK(c.closed_by_server(2000ms));
}

namespace {

/// A poller on the memory: store and an HTTP server configured by hand.
/// The task service (the core's owner) is declared first: it outlives the
/// actor system, so the core closes after every actor is gone.
struct bare_server {
  std::unique_ptr<tasker::actors::task_service> tasks;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  tasker::actors::poller_actor poller;
  std::unique_ptr<tasker::actors::http_server> http;

  explicit bare_server(tasker::actors::http_config hc, bool with_poller = true) {
    cfg.set("scheduler.max-threads", 2);
    cfg.set("logger.verbosity", caf::atom("quiet"));
    sys = std::make_unique<caf::actor_system>(cfg);
    tk_error err{};
    auto core = tasker::core_handle::open("memory:", err);
    REQUIRE(core);
    tasks = std::make_unique<tasker::actors::task_service>(std::move(core));
    if (with_poller) {
      tasker::actors::poller_config pc;
      poller = sys->spawn<caf::detached>(
          tasker::actors::poller, tasker::actors::core_ref{tasks->core()}, pc,
          std::unordered_map<std::string, tasker::actors::handler_route>{});
    }
    http = std::make_unique<tasker::actors::http_server>(*sys, *tasks, poller, std::move(hc));
  }
  ~bare_server() {
    http.reset();
    if (poller)
      caf::anon_send_exit(poller, caf::exit_reason::user_shutdown);
    poller = nullptr;  // a detached actor's thread ends only once its last handle is gone
    sys.reset();       // joins every actor before the task service closes the core
  }
};

}  // namespace

TEST_CASE("a graceful stop answers the request in flight, then refuses new connections"
          * doctest::timeout(30)) {
  std::promise<void> started;
  tasker::actors::http_config hc;
  hc.signal = [&started](const std::string& token, const std::string& body) {
    started.set_value();
    std::this_thread::sleep_for(300ms);
    return tasker::actors::http_reply{202, json{{"token", token}, {"body", body}}.dump()};
  };
  bare_server s{hc};
  const auto port = s.http->port();
  connection idle{port};
  connection busy{port};
  busy.send(request("POST", "/v1/signals/wake%20up", "hello"));
  REQUIRE(started.get_future().wait_for(5s) == std::future_status::ready);
  auto stopped = std::async(std::launch::async, [&] { return s.http->stop(5000ms); });
  auto r = busy.read();
  REQUIRE(r.has_value());
  CHECK(r->status == 202);
  CHECK(r->body_json() == json{{"token", "wake up"}, {"body", "hello"}});
  CHECK(r->headers["connection"] == "close");
  CHECK(busy.closed_by_server(2000ms));
  CHECK(idle.closed_by_server(2000ms));
  CHECK(stopped.get() == true);
  connection late{port};
  CHECK_FALSE(late.connected());
}

TEST_CASE("a stop whose deadline passes says so" * doctest::timeout(30)) {
  std::promise<void> started;
  tasker::actors::http_config hc;
  hc.signal = [&started](const std::string&, const std::string&) {
    started.set_value();
    std::this_thread::sleep_for(1500ms);
    return tasker::actors::http_reply{200, "{}"};
  };
  bare_server s{hc};
  connection busy{s.http->port()};
  busy.send(request("POST", "/v1/signals/x", "{}"));
  REQUIRE(started.get_future().wait_for(5s) == std::future_status::ready);
  const auto start = std::chrono::steady_clock::now();
  CHECK(s.http->stop(200ms) == false);
  CHECK(std::chrono::steady_clock::now() - start < 1000ms);
  CHECK(busy.closed_by_server(2000ms));
}

TEST_CASE("readiness fails with 503 when the poller is gone" * doctest::timeout(30)) {
  tasker::actors::http_config hc;
  hc.ready_timeout = 500ms;
  bare_server s{hc};
  caf::anon_send_exit(s.poller, caf::exit_reason::user_shutdown);
  // The poller's exit is asynchronous and only the server sees it: ask until it shows.
  http_response r;
  CHECK(tasker::test::eventually(
      [&] {
        r = call(s.http->port(), "GET", "/health/ready");
        return r.status != 200;
      },
      10s, 20ms));
  CHECK(r.status == 503);
  CHECK(r.body_json().at("error") == "unavailable");
  CHECK(call(s.http->port(), "GET", "/health").status == 200);  // the server itself lives
}

TEST_CASE("a server with no poller beside it serves tasks and is ready while its store answers"
          * doctest::timeout(30)) {
  tasker::actors::http_config hc;
  bare_server s{hc, false};
  const auto port = s.http->port();
  CHECK(call(port, "GET", "/health/ready").status == 200);
  json pipeline{{"namespace", "ns"},
                {"name", "p"},
                {"version", "1"},
                {"steps", {{{"name", "a"}, {"handler", "h"}}}}};
  REQUIRE_FALSE(s.tasks->register_pipeline(pipeline.dump()));
  auto created =
      call(port, "POST", "/v1/tasks",
           json{{"namespace", "ns"}, {"name", "p"}, {"version", "1"}, {"context", json::object()}}
               .dump());
  REQUIRE(created.status == 201);
  const auto id = created.body_json().at("id").get<std::int64_t>();
  auto status = call(port, "GET", "/v1/tasks/" + std::to_string(id));
  CHECK(status.status == 200);
  CHECK(status.body_json().at("steps")[0].at("state") == "ready");  // no poller claims it
  CHECK(call(port, "POST", "/v1/tasks/" + std::to_string(id) + "/cancel").status == 200);
  std::string state;
  REQUIRE_FALSE(s.tasks->wait(id, 5000ms, state));
  CHECK(state == "cancelled");
}
