// The profiler inside a real worker on the memory store: counts per handler
// and error type, queue/run/CPU-time histograms, CPU time measured on the
// handler's thread, DogStatsD on a loopback socket, the slow-step warning.
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "refuses.hpp"
#include <tasker/actors/function_host.hpp>
#include <tasker/runtime/profiler.hpp>
#include <tasker/runtime/worker.hpp>
#include <tasker/test/latch.hpp>
#include <tasker/test/metrics.hpp>
#include <tasker/test/temp_dir.hpp>

using namespace std::chrono_literals;
using tasker::json;

namespace {

tasker::worker_config memory_config() {
  tasker::worker_config cfg;
  cfg.store = "memory:";
  cfg.log_level = "error";
  cfg.threads = 2;
  cfg.summary_interval_ms = 0;
  return cfg;
}

/// One attempt, no retry; after `parent` when given.
tasker::step_options once(std::chrono::milliseconds timeout = 0ms, std::string parent = "") {
  tasker::retry_policy r;
  r.max_attempts = 1;
  auto o = parent.empty() ? tasker::step_options{} : tasker::after(parent);
  return o.retry(r).timeout(timeout);
}

std::int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

using metrics_test::has_line;
using metrics_test::udp_listener;

}  // namespace

TEST_CASE("a worker counts each handler's successes, failures and timeouts with their histograms"
          * doctest::timeout(60)) {
  auto cfg = memory_config();
  tasker::worker w{cfg};
  tasker::test::latch release;
  w.handle("ok", [](tasker::step_context&) { return tasker::success({{"v", 1}}); });
  w.handle("declines", [](tasker::step_context&) {
    return tasker::failure("card declined", "card_declined", false);
  });
  w.handle("hangs", [&](tasker::step_context&) {
    release.wait_for(30s);
    return tasker::success();
  });
  // One pipeline per handler, so that every step runs (a failed step would
  // stop its task's other branches from being waited for).
  std::vector<std::pair<tasker::pipeline, std::string>> runs;
  for (const auto& [handler, end] : {std::pair<std::string, std::string>{"ok", "complete"},
                                     {"declines", "error"},
                                     {"hangs", "error"}}) {
    tasker::pipeline p{"tests", "only_" + handler, "1"};
    p.step("s", handler, once(handler == "hangs" ? 50ms : 0ms));
    w.register_pipeline(p);
    runs.emplace_back(p, end);
  }
  auto& c = w.client();
  for (int i = 0; i < 2; ++i)
    for (const auto& [p, end] : runs)
      CHECK(c.wait(c.create(p)) == end);
  release.count_down();
  REQUIRE(w.run_until_idle(30s));

  REQUIRE(w.metrics());
  const auto snap = w.metrics()->snapshot();
  const auto* ok = snap.find("tests", "ok");
  const auto* declines = snap.find("tests", "declines");
  const auto* hangs = snap.find("tests", "hangs");
  REQUIRE(ok);
  REQUIRE(declines);
  REQUIRE(hangs);
  CHECK(ok->claimed == 2);
  CHECK(ok->succeeded == 2);
  CHECK(ok->failures.empty());
  CHECK(declines->failed == 2);
  CHECK(declines->failures
        == std::vector<std::pair<std::string, std::uint64_t>>{{"card_declined", 2}});
  CHECK(hangs->timed_out == 2);
  CHECK(hangs->failures
        == std::vector<std::pair<std::string, std::uint64_t>>{{"handler_timeout", 2}});
  for (const auto* s : {ok, declines, hangs}) {
    CAPTURE(s->handler);
    CHECK(s->in_flight == 0);
    CHECK(s->queue_wait.count() == 2);
    CHECK(s->run_time.count() == 2);
  }
  // CPU time comes back with a function handler's result (sampled: quick
  // runs after the first measured one are measured one in 16); a timed-out
  // run has none.
  CHECK(ok->cpu_time.count() >= 1);
  CHECK(declines->cpu_time.count() >= 1);
  CHECK(hangs->cpu_time.count() == 0);
  // The timeouts ran at least their 50 ms.
  CHECK(hangs->run_time.sum >= 2 * 50'000'000ULL);
  CHECK(snap.claimed == 6);
  CHECK(snap.poll_batch.count() >= 1);
  CHECK(snap.core_calls[0].count() + snap.core_calls[2].count() >= 1);

  const auto text = w.metrics_text();
  CHECK(has_line(text, "tasker_steps_claimed_total{namespace=\"tests\",handler=\"ok\"} 2"));
  CHECK(has_line(text, "tasker_steps_failed_total{namespace=\"tests\",handler=\"hangs\","
                       "error_type=\"handler_timeout\"} 2"));
  CHECK(has_line(text, "tasker_step_execution_duration_seconds_count{namespace=\"tests\","
                       "handler=\"declines\"} 2"));
  w.stop();
  CHECK(w.metrics()->snapshot().completed == 6);
}

TEST_CASE("CPU time follows a handler that computes and stays near zero for one that sleeps"
          * doctest::timeout(60)) {
  auto cfg = memory_config();
  tasker::worker w{cfg};
  w.handle("burn", [](tasker::step_context&) {
    // Spins until this thread has used 30 ms of CPU, however long that takes.
    const auto until = thread_cpu_ns() + 30'000'000;
    volatile std::uint64_t x = 0;
    while (thread_cpu_ns() < until)
      for (int i = 0; i < 1000; ++i)
        x = x + static_cast<std::uint64_t>(i);
    return tasker::success();
  });
  w.handle("nap", [](tasker::step_context&) {
    std::this_thread::sleep_for(50ms);
    return tasker::success();
  });
  tasker::pipeline p{"tests", "cpu", "1"};
  p.step("burn", "burn", once(10s)).step("nap", "nap", once(10s));
  w.register_pipeline(p);
  auto& c = w.client();
  // Twice, one task after the other: each step goes to its handler's first
  // instance both times.
  REQUIRE(c.wait(c.create(p)) == "complete");
  REQUIRE(c.wait(c.create(p)) == "complete");
  const auto snap = w.metrics()->snapshot();
  const auto* burn = snap.find("tests", "burn");
  const auto* nap = snap.find("tests", "nap");
  REQUIRE(burn);
  REQUIRE(nap);
  // A run of 50 us of CPU or more is always measured; after a quicker one
  // (the nap, usually) the next 15 runs of that instance are not.
  REQUIRE(burn->cpu_time.count() == 2);
  REQUIRE(nap->cpu_time.count() >= 1);
  CHECK(nap->run_time.count() == 2);
  MESSAGE("burn: cpu " << burn->cpu_time.sum / 1000 << " us of wall " << burn->run_time.sum / 1000
                       << " us; nap: cpu " << nap->cpu_time.sum / 1000 << " us in "
                       << nap->cpu_time.count() << " measured run(s) of wall "
                       << nap->run_time.sum / 1000 << " us");
  CHECK(burn->cpu_time.sum >= 2 * 30'000'000ULL);
  CHECK(burn->cpu_time.sum <= burn->run_time.sum);  // the wall clock includes the CPU time
  CHECK(nap->run_time.sum >= 2 * 50'000'000ULL);
  CHECK(nap->cpu_time.sum / nap->cpu_time.count() < 10'000'000ULL);  // a sleep costs little CPU
}

TEST_CASE("quick runs have their CPU time sampled, long ones always measured"
          * doctest::timeout(10)) {
  tasker::actors::cpu_sampler s;
  CHECK(s.measure_next());  // the first run
  s.measured(10'000);       // quick: the next 15 are skipped
  for (unsigned i = 1; i < tasker::actors::cpu_sampler::every; ++i)
    CHECK_FALSE(s.measure_next());
  CHECK(s.measure_next());
  s.measured(50'000);  // long enough: every run from now on
  CHECK(s.measure_next());
  s.measured(2'000'000);
  CHECK(s.measure_next());
  s.measured(1'000);
  CHECK_FALSE(s.measure_next());
}

TEST_CASE("the worker sends DogStatsD to a UDP socket on loopback" * doctest::timeout(60)) {
  udp_listener udp;
  auto cfg = memory_config();
  cfg.statsd = "127.0.0.1:" + std::to_string(udp.port);
  cfg.statsd_interval_ms = 60000;  // only the flush at stop
  tasker::worker w{cfg};
  w.handle("ok", [](tasker::step_context&) { return tasker::success(); });
  tasker::pipeline p{"tests", "statsd", "1"};
  p.step("a", "ok", once()).step("b", "ok", once(0ms, "a"));
  w.register_pipeline(p);
  auto& c = w.client();
  REQUIRE(c.wait(c.create(p)) == "complete");
  REQUIRE(c.wait(c.create(p)) == "complete");
  w.stop();

  std::vector<std::string> lines;
  for (std::string d; !(d = udp.receive(500ms)).empty();) {
    CHECK(d.size() <= 1432);
    std::istringstream in{d};
    for (std::string l; std::getline(in, l);)
      lines.push_back(l);
  }
  auto find = [&](const std::string& prefix) -> std::string {
    for (const auto& l : lines)
      if (l.rfind(prefix, 0) == 0)
        return l;
    return "";
  };
  INFO("received: " << lines.size() << " lines");
  CHECK(find("tasker.steps.claimed:4|c|#handler:ok,namespace:tests") != "");
  CHECK(find("tasker.steps.completed:4|c|#handler:ok,namespace:tests,outcome:succeeded") != "");
  CHECK(find("tasker.steps.in_flight:0|g|#handler:ok,namespace:tests") != "");
  CHECK(find("tasker.worker.steps_claimed:4|c") != "");
  // Every line parses as name:value|type[|@rate][|#tags].
  for (const auto& l : lines) {
    CAPTURE(l);
    const auto colon = l.find(':');
    const auto bar = l.find('|');
    REQUIRE(colon != std::string::npos);
    REQUIRE(bar != std::string::npos);
    CHECK(colon < bar);
    CHECK_NOTHROW((void)std::stod(l.substr(colon + 1, bar - colon - 1)));
    const auto type = l.substr(bar + 1, l.find('|', bar + 1) - bar - 1);
    CHECK((type == "c" || type == "g" || type == "d"));
  }
  const auto run = find("tasker.step.execution_duration_seconds:");
  CHECK(run.find("|d") != std::string::npos);
  CHECK(run.find("#handler:ok,namespace:tests") != std::string::npos);
}

TEST_CASE("a step slower than its handler's threshold is logged once with its ids"
          * doctest::timeout(60)) {
  auto cfg = memory_config();
  cfg.log_level = "warn";
  // Reset, not just stopped, before the sink goes: see the summary test.
  std::optional<tasker::worker> w{std::in_place, cfg};  // sets up the "tasker" logger
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto logger = spdlog::default_logger();
  logger->sinks().push_back(sink);
  tasker::handler_options snail;
  snail.slow_threshold = 5ms;
  w->handle(
      "snail",
      [](tasker::step_context&) {
        std::this_thread::sleep_for(30ms);
        return tasker::success();
      },
      snail);
  w->handle(
      "quick", [](tasker::step_context&) { return tasker::success(); }, snail);
  tasker::pipeline p{"tests", "slow", "1"};
  p.step("crawl", "snail", once()).step("dash", "quick", once(0ms, "crawl"));
  w->register_pipeline(p);
  auto& c = w->client();
  const auto task = c.create(p);
  REQUIRE(c.wait(task) == "complete");
  const auto step_id = c.status(task).at("steps")[0].at("id").get<std::int64_t>();
  w.reset();
  logger->flush();
  logger->sinks().pop_back();
  const auto text = captured.str();
  INFO(text);
  const auto expected = "slow step: task=" + std::to_string(task) + " step="
                        + std::to_string(step_id) + " name=crawl handler=snail attempt=1 ran ";
  CHECK(text.find(expected) != std::string::npos);
  CHECK(text.find("(threshold 5 ms)") != std::string::npos);
  CHECK(text.find("handler=quick") == std::string::npos);
  CHECK(text.find("slow step", text.find("slow step") + 1) == std::string::npos);
}

TEST_CASE("the worker logs a summary line at its interval once steps have run"
          * doctest::timeout(30)) {
  auto cfg = memory_config();
  cfg.log_level = "info";
  cfg.summary_interval_ms = 20;
  // Reset, not just stopped, before the sink is detached and destroyed: the
  // worker's actors may log until the actor system is gone. (The poller's
  // last line, "N steps claimed in …", once came after stop() returned and
  // hit a destroyed sink: "pure virtual method called". stop() now waits for
  // the poller to end; the check below holds it to that.)
  std::optional<tasker::worker> w{std::in_place, cfg};
  // Read while the reporter thread writes: a sink that hands out its lines
  // under its own lock (an ostringstream read meanwhile was a data race, and
  // crashed the test once).
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(10000);
  auto captured = [&] {
    std::string out;
    for (const auto& line : sink->last_formatted())
      out += line;
    return out;
  };
  auto logger = spdlog::default_logger();
  logger->sinks().push_back(sink);
  w->handle("ok", [](tasker::step_context&) { return tasker::success(); });
  tasker::pipeline p{"tests", "summary", "1"};
  p.step("a", "ok", once()).step("b", "ok", once(0ms, "a")).step("c", "ok", once(0ms, "b"));
  w->register_pipeline(p);
  auto& c = w->client();
  REQUIRE(c.wait(c.create(p)) == "complete");
  // The reporter runs on its own thread, which tells no one of its lines:
  // wait (up to 10 s) until they account for the three steps (a tick may
  // fall in the middle of the task).
  auto steps_reported = [](const std::string& text) {
    int n = 0;
    for (auto at = text.find("metrics: "); at != std::string::npos;
         at = text.find("metrics: ", at + 1))
      n += std::atoi(text.c_str() + at + 9);
    return n;
  };
  std::string text;
  tasker::test::eventually(
      [&] {
        logger->flush();
        text = captured();
        return steps_reported(text) >= 3;
      },
      10s, 10ms);
  w->stop();
  logger->flush();
  CHECK(captured().find("steps claimed in")
        != std::string::npos);  // the poller's, before stop() returned
  w.reset();
  logger->flush();
  logger->sinks().pop_back();
  INFO(text);
  CHECK(steps_reported(text) == 3);
  const auto at = text.rfind("metrics: ");
  REQUIRE(at != std::string::npos);
  const auto line = text.substr(at, text.find('\n', at) - at);
  CHECK(line.find(" steps in ") != std::string::npos);
  CHECK(line.find("run time p50 ") != std::string::npos);
  CHECK(line.find("0 in flight, 0 failed and 0 timed out since the last line")
        != std::string::npos);
}

TEST_CASE("with profile off there is no profiler and the metrics text says so"
          * doctest::timeout(30)) {
  auto cfg = memory_config();
  cfg.profile = false;
  tasker::worker w{cfg};
  w.handle("ok", [](tasker::step_context&) { return tasker::success(); });
  tasker::pipeline p{"tests", "off", "1"};
  p.step("a", "ok", once());
  w.register_pipeline(p);
  auto& c = w.client();
  REQUIRE(c.wait(c.create(p)) == "complete");
  CHECK(w.metrics() == nullptr);
  CHECK(w.metrics_text().rfind("# ", 0) == 0);
  cfg.statsd = "127.0.0.1:8125";
  CHECK_THROWS_AS(cfg.validate(), std::invalid_argument);
}

TEST_CASE("the metrics settings come from the command line and TASKER_ variables"
          * doctest::timeout(10)) {
  ::setenv("TASKER_PROFILE", "false", 1);
  ::setenv("TASKER_SUMMARY_INTERVAL_MS", "0", 1);
  tasker::worker_config cfg;
  const char* argv[] = {"worker", "--statsd-interval-ms=500"};
  int code = -1;
  REQUIRE(cfg.parse_args(2, const_cast<char**>(argv), &code));
  CHECK_FALSE(cfg.profile);
  CHECK(cfg.summary_interval_ms == 0);
  CHECK(cfg.statsd_interval_ms == 500);
  ::unsetenv("TASKER_SUMMARY_INTERVAL_MS");

  tasker::worker_config on;  // the command line wins over TASKER_PROFILE
  const char* profile_on[] = {"worker", "--profile", "--statsd=localhost:8125"};
  REQUIRE(on.parse_args(3, const_cast<char**>(profile_on), &code));
  CHECK(on.profile);
  CHECK(on.statsd == "localhost:8125");

  CHECK(tasker::test::refuses({"worker"}, "TASKER_PROFILE", "maybe"));
  CHECK(tasker::test::refuses({"worker", "--statsd=localhost"}));  // no port

  tasker::worker_config off;
  const char* no_profile[] = {"worker", "--no-profile"};
  REQUIRE(off.parse_args(2, const_cast<char**>(no_profile), &code));
  CHECK_FALSE(off.profile);

  // An INI file spells the boolean: profile=false.
  tasker::test::temp_dir dir{"tasker-metrics"};
  const std::string ini = dir.file("w.ini");
  dir.write("w.ini", "[global]\nprofile=false\nsummary-interval-ms=5000\n");
  tasker::worker_config from_ini;
  const std::string flag = "--config-file=" + ini;
  const char* with_ini[] = {"worker", flag.c_str()};
  REQUIRE(from_ini.parse_args(2, const_cast<char**>(with_ini), &code));
  CHECK_FALSE(from_ini.profile);
  CHECK(from_ini.summary_interval_ms == 5000);

  CHECK(tasker::test::refuses({"worker", "--no-profile", "--statsd=127.0.0.1:8125"}));
}
