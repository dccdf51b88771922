// The profiler without a worker: bucket edges, Prometheus rendering and
// escaping, counts by outcome and error type, the slow-step warning, the
// summary line, and DogStatsD lines and datagrams on a real loopback socket.
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tasker/runtime/dogstatsd.hpp>
#include <tasker/runtime/profiler.hpp>
#include <tasker/test/metrics.hpp>

using namespace std::chrono_literals;
using tasker::duration_buckets;

namespace {

using tp = tasker::observer_clock::time_point;

// Drives the hooks as the poller would, for one step.
struct step_driver {
  tasker::profiler& prof;
  std::string ns = "shop";
  std::string handler = "charge";
  std::int64_t next_id = 1;

  void run(std::chrono::nanoseconds wait, std::chrono::nanoseconds run_time,
           tasker::step_outcome outcome = tasker::step_outcome::succeeded,
           std::string error_type = "", std::chrono::nanoseconds cpu = -1ns) {
    const auto id = next_id++;
    const tp claimed{1s};
    const tp started = claimed + wait;
    const tp finished = started + run_time;
    void* cookie = prof.on_step_claimed({id, id, ns, "step", handler, 1, claimed});
    prof.on_step_started({id, id, ns, "step", handler, 1, claimed, started, cookie});
    prof.on_step_finished({id, id, ns, "step", handler, 1, 3, outcome, error_type, true, claimed,
                           started, finished, cpu, cookie});
  }
};

using metrics_test::has_line;
using metrics_test::udp_listener;

/// Routes spdlog's default logger to a string while alive.
struct log_capture {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> saved = spdlog::default_logger();
  log_capture() {
    auto logger = std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~log_capture() { spdlog::set_default_logger(saved); }
};

}  // namespace

TEST_CASE("duration buckets run 1-2-5 from 1 us to 100 s, each bound inside its own bucket"
          * doctest::timeout(10)) {
  CHECK(duration_buckets::index(0) == 0);
  CHECK(duration_buckets::index(1'000) == 0);
  CHECK(duration_buckets::index(1'001) == 1);
  CHECK(duration_buckets::index(2'000) == 1);
  CHECK(duration_buckets::index(2'001) == 2);
  CHECK(duration_buckets::index(5'000'000) == 11);  // 5 ms
  CHECK(duration_buckets::index(100'000'000'000ULL) == duration_buckets::count - 1);
  CHECK(duration_buckets::index(100'000'000'001ULL) == duration_buckets::count);  // +Inf
  for (std::size_t i = 1; i < duration_buckets::count; ++i)
    CHECK(duration_buckets::bounds[i] > duration_buckets::bounds[i - 1]);
  CHECK(tasker::size_buckets::index(0) == 0);
  CHECK(tasker::size_buckets::index(64) == 7);
  CHECK(tasker::size_buckets::index(65) == 8);
  CHECK(tasker::size_buckets::index(5000) == tasker::size_buckets::count);
}

TEST_CASE("the Prometheus histogram is cumulative, ends with +Inf and sums in seconds"
          * doctest::timeout(10)) {
  tasker::profiler prof;
  step_driver d{prof};
  d.run(500ns, 1500ns);
  d.run(500ns, 2000ns);
  d.run(3us, 3ms);
  d.run(3us, 200s);  // beyond the last bound
  const auto text = prof.prometheus_text();
  const std::string h = "tasker_step_execution_duration_seconds";
  const std::string l = "namespace=\"shop\",handler=\"charge\"";
  CHECK(has_line(text, "# TYPE " + h + " histogram"));
  CHECK(has_line(text, h + "_bucket{" + l + ",le=\"0.000001\"} 0"));
  CHECK(has_line(text, h + "_bucket{" + l + ",le=\"0.000002\"} 2"));
  CHECK(has_line(text, h + "_bucket{" + l + ",le=\"0.002\"} 2"));
  CHECK(has_line(text, h + "_bucket{" + l + ",le=\"0.005\"} 3"));
  CHECK(has_line(text, h + "_bucket{" + l + ",le=\"100\"} 3"));
  CHECK(has_line(text, h + "_bucket{" + l + ",le=\"+Inf\"} 4"));
  CHECK(has_line(text, h + "_count{" + l + "} 4"));
  CHECK(has_line(text, h + "_sum{" + l + "} 200.0030035"));
  // Queue wait: two of 0.5 us (first bucket), two of 3 us (le 5 us).
  const std::string q = "tasker_step_queue_wait_seconds";
  CHECK(has_line(text, q + "_bucket{" + l + ",le=\"0.000001\"} 2"));
  CHECK(has_line(text, q + "_bucket{" + l + ",le=\"0.000005\"} 4"));
  CHECK(has_line(text, "tasker_steps_claimed_total{" + l + "} 4"));
  CHECK(has_line(text, "tasker_steps_in_flight{" + l + "} 0"));
  // No CPU time was measured: an empty histogram, not a made-up one.
  CHECK(has_line(text, "tasker_step_cpu_seconds_count{" + l + "} 0"));
}

TEST_CASE("label values are escaped as the text format requires" * doctest::timeout(10)) {
  CHECK(tasker::prometheus_escape("plain") == "plain");
  CHECK(tasker::prometheus_escape("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  tasker::profiler prof;
  step_driver d{prof};
  d.ns = "n\"s";
  d.handler = "line\nbreak\\";
  d.run(1us, 1us, tasker::step_outcome::failed, "bad \"type\"");
  const auto text = prof.prometheus_text();
  CHECK(has_line(
      text, "tasker_steps_claimed_total{namespace=\"n\\\"s\",handler=\"line\\nbreak\\\\\"} 1"));
  CHECK(has_line(text,
                 "tasker_steps_failed_total{namespace=\"n\\\"s\",handler=\"line\\nbreak\\\\\","
                 "error_type=\"bad \\\"type\\\"\"} 1"));
}

TEST_CASE("outcomes and error types are counted per handler; in flight is claimed minus finished"
          * doctest::timeout(10)) {
  tasker::profiler prof;
  step_driver d{prof};
  d.run(1us, 1ms);
  d.run(1us, 1ms, tasker::step_outcome::failed, "card_declined", 700us);
  d.run(1us, 1ms, tasker::step_outcome::failed, "card_declined");
  d.run(1us, 30ms, tasker::step_outcome::timed_out, "handler_timeout");
  d.handler = "ship";
  d.run(1us, 1ms);
  // One claimed, never finished.
  prof.on_step_claimed({99, 99, "shop", "later", "ship", 1, tp{1s}});

  const auto snap = prof.snapshot();
  const auto* charge = snap.find("shop", "charge");
  REQUIRE(charge);
  CHECK(charge->claimed == 4);
  CHECK(charge->succeeded == 1);
  CHECK(charge->failed == 2);
  CHECK(charge->timed_out == 1);
  CHECK(charge->in_flight == 0);
  CHECK(charge->failures
        == std::vector<std::pair<std::string, std::uint64_t>>{{"card_declined", 2},
                                                              {"handler_timeout", 1}});
  CHECK(charge->cpu_time.count() == 1);
  CHECK(charge->cpu_time.sum == 700'000);
  const auto* ship = snap.find("shop", "ship");
  REQUIRE(ship);
  CHECK(ship->claimed == 2);
  CHECK(ship->in_flight == 1);
  const auto text = prof.prometheus_text();
  const std::string l = "namespace=\"shop\",handler=\"charge\"";
  CHECK(has_line(text, "tasker_steps_completed_total{" + l + ",outcome=\"failed\"} 2"));
  CHECK(has_line(text, "tasker_steps_completed_total{" + l + ",outcome=\"timed_out\"} 1"));
  CHECK(has_line(text, "tasker_steps_failed_total{" + l + ",error_type=\"handler_timeout\"} 1"));
  CHECK(has_line(text, "tasker_steps_in_flight{namespace=\"shop\",handler=\"ship\"} 1"));
}

TEST_CASE("store calls give poll batch sizes, core call latency and worker totals"
          * doctest::timeout(10)) {
  tasker::profiler prof;
  using tasker::core_call;
  prof.on_poll({core_call::poll, 64, 64, 40us, true});
  prof.on_poll({core_call::poll, 64, 3, 10us, true});
  prof.on_complete_batch({core_call::complete_and_poll, 67, 120us, true});
  prof.on_poll({core_call::complete_and_poll, 64, 0, 0ns, true});
  prof.on_complete_batch({core_call::complete, 5, 3ms, false});  // failed: nothing completed
  const auto snap = prof.snapshot();
  CHECK(snap.claimed == 67);
  CHECK(snap.completed == 67);
  CHECK(snap.poll_batch.count() == 3);
  CHECK(snap.core_calls[0].count() == 2);  // the combined call's poll half is not timed twice
  CHECK(snap.core_calls[1].count() == 1);
  CHECK(snap.core_calls[2].count() == 1);
  const auto text = prof.prometheus_text();
  CHECK(has_line(text, "tasker_poll_batch_size_bucket{le=\"0\"} 1"));
  CHECK(has_line(text, "tasker_poll_batch_size_bucket{le=\"4\"} 2"));
  CHECK(has_line(text, "tasker_poll_batch_size_bucket{le=\"64\"} 3"));
  CHECK(has_line(text, "tasker_poll_batch_size_sum 67"));
  CHECK(has_line(text, "tasker_core_call_duration_seconds_count{call=\"poll\"} 2"));
  CHECK(has_line(text, "tasker_core_call_duration_seconds_sum{call=\"complete\"} 0.003"));
  CHECK(has_line(text, "tasker_worker_steps_completed_total 67"));
}

TEST_CASE("handlers beyond max_series share one _other series" * doctest::timeout(10)) {
  tasker::profiler_options o;
  o.max_series = 2;
  tasker::profiler prof{o};
  step_driver d{prof};
  for (const char* h : {"a", "b", "c", "d"}) {
    d.handler = h;
    d.run(1us, 1us);
  }
  const auto snap = prof.snapshot();
  CHECK(snap.series.size() == 3);
  REQUIRE(snap.find("_other", "_other"));
  CHECK(snap.find("_other", "_other")->claimed == 2);
  CHECK(snap.find("shop", "a"));
  CHECK_FALSE(snap.find("shop", "c"));
}

TEST_CASE("a run over its handler's slow threshold logs one warning with the step's ids"
          * doctest::timeout(10)) {
  tasker::profiler_options o;
  o.slow_thresholds["charge"] = 10ms;
  tasker::profiler prof{o};
  log_capture log;
  step_driver d{prof};
  d.next_id = 41;
  d.run(1us, 9ms);   // under: step 41
  d.run(1us, 25ms);  // over: step 42
  d.handler = "ship";
  d.run(1us, 25ms);  // no threshold: step 43
  spdlog::default_logger()->flush();
  const auto text = log.out.str();
  CHECK(text.find("slow step: task=42 step=42 name=step handler=charge attempt=1 ran 25 ms "
                  "(threshold 10 ms)")
        != std::string::npos);
  CHECK(text.find("step=41") == std::string::npos);
  CHECK(text.find("step=43") == std::string::npos);
  CHECK(text.find("slow step", text.find("slow step") + 1) == std::string::npos);
}

TEST_CASE("quantiles interpolate inside their bucket and the summary line reports the interval"
          * doctest::timeout(10)) {
  tasker::profiler prof;
  step_driver d{prof};
  const auto before = prof.snapshot();
  for (int i = 0; i < 100; ++i)
    d.run(1us, 1500us);  // all in the (1 ms, 2 ms] bucket
  d.run(1us, 1ms, tasker::step_outcome::failed, "card_declined");
  d.run(1us, 1ms, tasker::step_outcome::timed_out, "handler_timeout");
  auto now = prof.snapshot();
  const auto& run = now.find("shop", "charge")->run_time;
  const double p50 = run.quantile(0.5, duration_buckets::bounds.data(), duration_buckets::count);
  CHECK(p50 > 1e6);
  CHECK(p50 <= 2e6);
  now.taken = before.taken + 10s;
  const auto line = tasker::profiler::summary_line(before, now);
  INFO(line);
  CHECK(line.find("102 steps in 10.0 s (10.2/s)") != std::string::npos);
  CHECK(line.find("1 failed and 1 timed out") != std::string::npos);
  CHECK(line.find("0 in flight") != std::string::npos);
}

TEST_CASE("DogStatsD lines carry counter deltas, gauges and sampled distributions"
          * doctest::timeout(10)) {
  tasker::profiler prof;
  step_driver d{prof};
  d.run(1us, 1500us);
  const auto first = prof.snapshot();
  for (int i = 0; i < 4; ++i)
    d.run(1us, 1500us);
  d.run(1us, 1500us, tasker::step_outcome::failed, "card,declined");
  const auto lines = tasker::dogstatsd_lines(first, prof.snapshot());
  auto has = [&](const std::string& l) {
    return std::find(lines.begin(), lines.end(), l) != lines.end();
  };
  const std::string tags = "#handler:charge,namespace:shop";
  CHECK(has("tasker.steps.claimed:5|c|" + tags));
  CHECK(has("tasker.steps.completed:4|c|" + tags + ",outcome:succeeded"));
  CHECK(has("tasker.steps.completed:1|c|" + tags + ",outcome:failed"));
  CHECK(has("tasker.steps.failed:1|c|" + tags + ",error_type:card_declined"));
  CHECK(has("tasker.steps.in_flight:0|g|" + tags));
  // Five runs in the (1 ms, 2 ms] bucket: its midpoint, standing for five.
  CHECK(has("tasker.step.execution_duration_seconds:0.0015|d|@0.2|" + tags));
  // Nothing new: no counter lines, only the gauge.
  const auto same = prof.snapshot();
  const auto none = tasker::dogstatsd_lines(same, same);
  REQUIRE(none.size() == 1);
  CHECK(none[0] == "tasker.steps.in_flight:0|g|" + tags);
}

TEST_CASE("the DogStatsD client packs lines into datagrams a loopback socket receives whole"
          * doctest::timeout(10)) {
  udp_listener udp;
  tasker::dogstatsd_client client{"127.0.0.1:" + std::to_string(udp.port)};
  std::vector<std::string> lines;
  for (int i = 0; i < 100; ++i)
    lines.push_back("tasker.test.metric_" + std::to_string(i) + ":" + std::to_string(i) + "|c");
  const auto datagrams = client.send(lines);
  CHECK(datagrams > 1);
  std::vector<std::string> got;
  for (std::size_t i = 0; i < datagrams; ++i) {
    const auto d = udp.receive(2000ms);
    REQUIRE_FALSE(d.empty());
    CHECK(d.size() <= tasker::dogstatsd_client::max_datagram);
    std::istringstream in{d};
    for (std::string l; std::getline(in, l);)
      got.push_back(l);
  }
  CHECK(got == lines);
  CHECK(client.dropped() == 0);
}

TEST_CASE("a statsd address must be host:port" * doctest::timeout(10)) {
  CHECK(tasker::split_host_port("localhost:8125")
        == std::pair<std::string, std::string>{"localhost", "8125"});
  CHECK(tasker::split_host_port("[::1]:8125")
        == std::pair<std::string, std::string>{"::1", "8125"});
  CHECK_THROWS_AS(tasker::split_host_port("localhost"), std::invalid_argument);
  CHECK_THROWS_AS(tasker::split_host_port("host:port"), std::invalid_argument);
  CHECK_THROWS_AS(tasker::split_host_port(":8125"), std::invalid_argument);
  tasker::profiler_options o;
  o.statsd_address = "127.0.0.1";
  CHECK_THROWS_AS(tasker::profiler{o}, std::invalid_argument);
}
