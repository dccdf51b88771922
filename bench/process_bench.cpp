// process_bench: the process actor against std::system and popen.
//
//   true        spawn-and-collect /bin/true N times, one at a time, then with
//               8 in flight (the baselines use 8 threads)
//   10 MB       a command writing 10,000,000 bytes (head -c 10000000
//               /dev/zero): the actor captures it; popen reads it; std::system
//               can only send it to /dev/null
//   busy pool   the request/reply latency of a no-op actor (pinged from an
//               actor on CAF's pool every millisecond) while idle, and while
//               200 `sleep 0.5` children run under the process actor
//
// Requests go from a scoped_actor in main to the process actor; std::system
// runs `sh -c`, so it pays one more exec than the others.
//
//   process_bench [--quick]   (--quick: fewer runs, 50 sleepers)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "stats.hpp"
#include "table.hpp"
#include <tasker/actors/process_actor.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

double us_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

/// Runs `fn` `n` times on `threads` threads; total wall time in microseconds.
template <class F>
double in_threads(int n, int threads, F fn) {
  std::atomic<int> next{0};
  const auto t0 = clock_type::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      while (next.fetch_add(1) < n)
        fn();
    });
  for (auto& t : pool)
    t.join();
  return us_since(t0);
}

int run_system(const char* cmd) {
  return std::system(cmd);
}

/// popen + read everything + pclose; the bytes read.
std::size_t run_popen(const char* cmd) {
  FILE* f = ::popen(cmd, "r");
  if (f == nullptr)
    return 0;
  std::string out;
  char buf[65536];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;)
    out.append(buf, n);
  ::pclose(f);
  return out.size();
}

// -- the latency probe: an actor on the pool pinging a no-op actor ----------

caf::behavior noop(caf::event_based_actor*, int) {
  return {[](ping_atom, std::int64_t x) { return x; }};
}

struct pinger_state {
  caf::actor target;
  bool running = false;
  std::int64_t generation = 0;  ///< a tick of an earlier start() is dropped
  std::vector<std::int64_t> samples_ns;
};

caf::behavior pinger(caf::stateful_actor<pinger_state>* self, caf::actor target) {
  self->state.target = std::move(target);
  return {
      [self](start_atom) {
        self->state.samples_ns.clear();
        self->state.running = true;
        self->send(self, ping_atom::value, ++self->state.generation);
      },
      [self](ping_atom, std::int64_t generation) {
        if (!self->state.running || generation != self->state.generation)
          return;
        const auto t0 = clock_type::now();
        self->request(self->state.target, 1s, ping_atom::value, std::int64_t{1})
            .then([self, t0, generation](std::int64_t) {
              self->state.samples_ns.push_back(
                  std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0)
                      .count());
              self->delayed_send(self, 1ms, ping_atom::value, generation);
            });
      },
      [self](stop_atom) {
        self->state.running = false;
        return self->state.samples_ns;
      },
  };
}

struct latency {
  double p50_us = 0, p99_us = 0;
  std::size_t samples = 0;
};

latency measure(caf::scoped_actor& self, const caf::actor& probe,
                const std::function<void()>& during) {
  self->send(probe, start_atom::value);
  during();
  latency out;
  self->request(probe, 10s, stop_atom::value)
      .receive(
          [&](std::vector<std::int64_t>& ns) {
            std::vector<double> us;
            for (auto x : ns)
              us.push_back(static_cast<double>(x) / 1000.0);
            out.p50_us = bench::percentile(us, 0.50);
            out.p99_us = bench::percentile(us, 0.99);
            out.samples = us.size();
          },
          [](caf::error&) {});
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: process_bench [--quick]\n");
      return 2;
    }
  }
  const int true_runs = quick ? 50 : 300;
  const int big_runs = quick ? 3 : 10;
  const int sleepers = quick ? 50 : 200;
  const int window = 8;

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2).set("work-stealing.moderate-poll-attempts", 0);
  caf::actor_system sys{cfg};
  auto procs = tasker::actors::spawn_process_actor(sys);
  bool ok = true;
  {
    caf::scoped_actor self{sys};
    auto run = [&](tasker::process_request req) {
      tasker::process_result out;
      self->request(procs, 60s, tasker::run_atom_v, std::move(req))
          .receive([&](tasker::process_result& r) { out = std::move(r); },
                   [&](caf::error& e) {
                     out.error = tasker::process_errc::io_error;
                     out.error_message = sys.render(e);
                   });
      return out;
    };
    /// Runs `n` copies of `req` with `in_flight` at a time; total microseconds.
    auto run_window = [&](const tasker::process_request& req, int n, int in_flight) {
      const auto t0 = clock_type::now();
      int sent = 0, received = 0;
      for (; sent < std::min(n, in_flight); ++sent)
        self->send(procs, tasker::run_atom_v, req);
      while (received < n) {
        self->receive(
            [&](tasker::process_result& r) {
              ++received;
              if (!r.ok())
                ok = false;
              if (sent < n) {
                self->send(procs, tasker::run_atom_v, req);
                ++sent;
              }
            },
            caf::after(60s) >>
                [&] {
                  ok = false;
                  received = n;
                });
      }
      return us_since(t0);
    };

    std::printf("process_bench%s (ratios: how many times faster the process actor is; < 1: "
                "slower)\n\n",
                quick ? " --quick" : "");

    // -- /bin/true, one at a time ------------------------------------------------
    tasker::process_request t;
    t.argv = {"/bin/true"};
    run(t);  // warm-up
    std::vector<double> actor_us, system_us, popen_us;
    for (int i = 0; i < true_runs; ++i) {
      auto t0 = clock_type::now();
      if (!run(t).ok())
        ok = false;
      actor_us.push_back(us_since(t0));
      t0 = clock_type::now();
      run_system("/bin/true");
      system_us.push_back(us_since(t0));
      t0 = clock_type::now();
      run_popen("/bin/true");
      popen_us.push_back(us_since(t0));
    }
    const double a50 = bench::percentile(actor_us, 0.5);
    const double s50 = bench::percentile(system_us, 0.5);
    const double p50 = bench::percentile(popen_us, 0.5);
    std::printf("/bin/true x%d, sequential, median per run (us):\n", true_runs);
    std::printf("  process actor %8.1f\n  std::system   %8.1f  (%.2fx)\n  popen         %8.1f  "
                "(%.2fx)\n\n",
                a50, s50, s50 / a50, p50, p50 / a50);
    bench::table_row("process actor spawn /bin/true, sequential, vs std::system",
                     bench::fmt(s50, "us"), bench::fmt(a50, "us"), s50 / a50, 2.0);

    // -- /bin/true, 8 in flight --------------------------------------------------
    const double a_total = run_window(t, true_runs, window);
    const double s_total = in_threads(true_runs, window, [] { run_system("/bin/true"); });
    const double p_total = in_threads(true_runs, window, [] { run_popen("/bin/true"); });
    std::printf("/bin/true x%d, %d in flight, runs per second:\n", true_runs, window);
    const auto rate = [&](double total) { return true_runs / (total / 1e6); };
    std::printf("  process actor %8.0f\n  std::system   %8.0f  (%.2fx)\n  popen         %8.0f  "
                "(%.2fx)\n\n",
                rate(a_total), rate(s_total), s_total / a_total, rate(p_total), p_total / a_total);
    bench::table_row("process actor spawn /bin/true, 8 in flight, vs std::system",
                     bench::fmt(rate(s_total), "runs/s", 0), bench::fmt(rate(a_total), "runs/s", 0),
                     s_total / a_total, 2.0);

    // -- 10 MB of output ---------------------------------------------------------
    tasker::process_request big;
    big.argv = {"/usr/bin/head", "-c", "10000000", "/dev/zero"};
    big.max_stdout = 16 << 20;
    // Each way in its own block (after one warm-up run): interleaved, the
    // ways disturb each other's malloc (a fresh 10 MB buffer is mostly page
    // faults, for the actor and popen alike).
    std::vector<double> big_actor, big_popen, big_system;
    for (int i = 0; i <= big_runs; ++i) {
      const auto t0 = clock_type::now();
      auto r = run(big);
      if (i > 0)
        big_actor.push_back(us_since(t0));
      if (!r.ok() || r.stdout_data.size() != 10000000)
        ok = false;
    }
    for (int i = 0; i <= big_runs; ++i) {
      const auto t0 = clock_type::now();
      if (run_popen("head -c 10000000 /dev/zero") != 10000000)
        ok = false;
      if (i > 0)
        big_popen.push_back(us_since(t0));
    }
    for (int i = 0; i <= big_runs; ++i) {
      const auto t0 = clock_type::now();
      run_system("head -c 10000000 /dev/zero > /dev/null");
      if (i > 0)
        big_system.push_back(us_since(t0));
    }
    const double ba = bench::percentile(big_actor, 0.5), bp = bench::percentile(big_popen, 0.5),
                 bs = bench::percentile(big_system, 0.5);
    std::printf("10 MB of stdout x%d, median per run (us):\n", big_runs);
    std::printf("  process actor (captured) %8.1f\n  popen (captured)         %8.1f  (%.2fx)\n"
                "  std::system (>/dev/null) %8.1f  (%.2fx)\n\n",
                ba, bp, bp / ba, bs, bs / ba);
    bench::table_row("process actor 10 MB of stdout vs popen", bench::fmt(bp / 1000, "ms"),
                     bench::fmt(ba / 1000, "ms"), bp / ba, 1.1);

    // -- pool latency while children run -------------------------------------------
    auto target = sys.spawn(noop, 0);
    auto probe = sys.spawn(pinger, target);
    const auto idle = measure(self, probe, [] { std::this_thread::sleep_for(1s); });
    tasker::process_request sleep;
    sleep.argv = {"/bin/sleep", "0.5"};
    double busy_total = 0;
    const auto busy =
        measure(self, probe, [&] { busy_total = run_window(sleep, sleepers, sleepers); });
    std::printf("no-op actor request/reply on the pool (us), idle vs %d concurrent `sleep 0.5`:\n",
                sleepers);
    std::printf("  idle   P50 %7.1f  P99 %7.1f  (%zu samples)\n", idle.p50_us, idle.p99_us,
                idle.samples);
    std::printf("  busy   P50 %7.1f  P99 %7.1f  (%zu samples; all %d collected in %.0f ms)\n",
                busy.p50_us, busy.p99_us, busy.samples, sleepers, busy_total / 1000);
    std::printf("  busy / idle  P50 %6.2fx  P99 %6.2fx\n", busy.p50_us / idle.p50_us,
                busy.p99_us / idle.p99_us);
    for (auto& a : {target, probe})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
  caf::anon_send_exit(procs, caf::exit_reason::user_shutdown);
  if (!ok)
    std::fprintf(stderr, "process_bench: some run failed\n");
  return ok ? 0 : 1;
}
