// profiler_bench: what profiling costs.
//
//   record      all hooks of one step (claimed, started, finished, plus its
//               share of a poll and a complete batch of 64) on a profiler,
//               per step: on one thread (the poller is a profiler's only
//               writer), alone and while another thread renders the
//               Prometheus text over and over; the same loop on an observer
//               that does nothing, for the loop's own cost
//   cpu clock   the two CLOCK_THREAD_CPUTIME_ID reads a function handler's
//               run costs when the worker profiles
//   runtime     no-op 4-step tasks through a real worker on the memory
//               store, profile off and on, alternating rounds
//
//   profiler_bench [--steps N (per recording run)] [--tasks N (per runtime
//                  round)] [--rounds N]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <vector>

#include "stats.hpp"
#include "table.hpp"
#include <tasker/runtime/profiler.hpp>
#include <tasker/runtime/worker.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct options {
  long steps = 5'000'000;
  int tasks = 50'000;
  int rounds = 5;
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: profiler_bench [--steps N] [--tasks N] [--rounds N]\n");
      std::exit(2);
    }
    const char* v = argv[++i];
    if (a == "--steps")
      o.steps = std::atol(v);
    else if (a == "--tasks")
      o.tasks = std::atoi(v);
    else if (a == "--rounds")
      o.rounds = std::atoi(v);
    else {
      std::fprintf(stderr, "usage: profiler_bench [--steps N] [--tasks N] [--rounds N]\n");
      std::exit(2);
    }
  }
  return o;
}

// Durations spread over the buckets (log-uniform from 1 us to ~100 ms), so
// that bucket lookups do not all take one path.
std::vector<std::chrono::nanoseconds> spread(std::size_t n) {
  std::vector<std::chrono::nanoseconds> v;
  std::uint64_t x = 88172645463325252ULL;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const int decade = static_cast<int>(x % 5);  // 1 us .. 100 ms
    std::int64_t base = 1000;
    for (int d = 0; d < decade; ++d)
      base *= 10;
    v.emplace_back(base
                   + static_cast<std::int64_t>((x >> 8) % static_cast<std::uint64_t>(base * 9)));
  }
  return v;
}

std::int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct per_step {
  double wall_ns;
  double cpu_ns;  ///< the recording thread's CPU time: without time lost to other processes
};

// Calls every hook of `steps` steps on `obs`; returns the time per step.
per_step record(tasker::observer& obs, long steps, const std::vector<std::chrono::nanoseconds>& d,
                std::int64_t id_base) {
  using namespace tasker;
  const std::string ns = "bench", handler = "noop", name = "step";
  const auto t0 = observer_clock::time_point{} + 1h;
  const std::size_t mask = d.size() - 1;
  const auto cpu_start = thread_cpu_ns();
  const auto start = clock_type::now();
  for (long i = 0; i < steps; ++i) {
    const auto id = id_base + i;
    const auto wait = d[static_cast<std::size_t>(i) & mask];
    const auto run = d[static_cast<std::size_t>(i + 1) & mask];
    if ((i & 63) == 0)
      obs.on_poll({core_call::poll, 64, 64, run, true});
    void* cookie = obs.on_step_claimed({id, id, ns, name, handler, 1, t0});
    obs.on_step_started({id, id, ns, name, handler, 1, t0, t0 + wait, cookie});
    obs.on_step_finished({id,
                          id,
                          ns,
                          name,
                          handler,
                          1,
                          3,
                          step_outcome::succeeded,
                          {},
                          true,
                          t0,
                          t0 + wait,
                          t0 + wait + run,
                          run / 2,
                          cookie});
    if ((i & 63) == 63)
      obs.on_complete_batch({core_call::complete, 64, run, true});
  }
  const double ns_total =
      std::chrono::duration<double, std::nano>(clock_type::now() - start).count();
  const auto cpu_total = static_cast<double>(thread_cpu_ns() - cpu_start);
  return {ns_total / static_cast<double>(steps), cpu_total / static_cast<double>(steps)};
}

// The writer's figures while another thread renders the Prometheus text
// without a pause (a scraper does it every few seconds: this is the worst a
// reader can do to the writer). `renders` gets how many texts it made.
per_step record_while_read(tasker::profiler& prof, long steps,
                           const std::vector<std::chrono::nanoseconds>& d, long& renders) {
  std::atomic<bool> done{false};
  std::atomic<long> made{0};
  std::thread reader([&] {
    while (!done.load(std::memory_order_acquire)) {
      const auto text = prof.prometheus_text();
      if (!text.empty())
        made.fetch_add(1, std::memory_order_relaxed);
    }
  });
  const auto r = record(prof, steps, d, 0);
  done.store(true, std::memory_order_release);
  reader.join();
  renders = made.load();
  return r;
}

double cpu_clock_pair_ns(long n) {
  std::int64_t sink = 0;
  const auto start = clock_type::now();
  for (long i = 0; i < n; ++i) {
    const auto a = thread_cpu_ns();
    sink += thread_cpu_ns() - a;
  }
  const double total = std::chrono::duration<double, std::nano>(clock_type::now() - start).count();
  if (sink < 0)
    std::puts("");
  return total / static_cast<double>(n);
}

// CPU time of the whole process (every thread) so far, in seconds.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

struct round_figures {
  double steps_per_second;
  double cpu_us_per_step;  ///< process CPU (all threads): robust against other processes
};

round_figures runtime_round(bool profile, int tasks) {
  tasker::worker_config cfg;
  cfg.store = "memory:";
  cfg.log_level = "warn";
  cfg.threads = 2;
  cfg.max_in_flight = 512;
  cfg.batch_size = 64;
  cfg.profile = profile;
  cfg.summary_interval_ms = 0;
  tasker::worker w{cfg};
  w.handle("noop", [](tasker::step_context&) { return tasker::success({{"value", 1}}); });
  using tasker::after;
  tasker::pipeline linear{"bench", "linear", "1"};
  linear.step("s1", "noop")
      .step("s2", "noop", after("s1"))
      .step("s3", "noop", after("s2"))
      .step("s4", "noop", after("s3"));
  w.register_pipeline(linear);
  const auto start = clock_type::now();
  const double cpu_start = process_cpu_seconds();
  std::vector<tasker::json> contexts(1000, tasker::json::object());
  for (int created = 0; created < tasks;) {
    const int n = std::min(1000, tasks - created);
    contexts.resize(static_cast<std::size_t>(n));
    w.client().create_many(linear, contexts);
    created += n;
  }
  if (!w.run_until_idle(std::chrono::minutes(10))) {
    std::fprintf(stderr, "profiler_bench: the worker did not become idle\n");
    std::exit(1);
  }
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  const double cpu = process_cpu_seconds() - cpu_start;
  if (profile) {
    const auto snap = w.metrics()->snapshot();
    const auto* s = snap.find("bench", "noop");
    if (!s || s->finished() != 4ULL * static_cast<std::uint64_t>(tasks)) {
      std::fprintf(stderr, "profiler_bench: the profiler missed steps\n");
      std::exit(1);
    }
  }
  w.stop();
  return {4.0 * tasks / seconds, cpu * 1e6 / (4.0 * tasks)};
}

}  // namespace

int main(int argc, char** argv) {
  const auto o = parse(argc, argv);
  const auto d = spread(1024);

  std::printf("recording, %ld steps per run, median of %d runs (ns per step, all hooks)\n", o.steps,
              o.rounds);
  std::vector<double> none, one, one_cpu, read, read_cpu, renders, clock_pair;
  for (int r = 0; r < o.rounds; ++r) {
    tasker::observer nothing;
    tasker::observer* volatile opaque = &nothing;  // no devirtualising the no-op hooks away
    none.push_back(record(*opaque, o.steps, d, 0).wall_ns);
    tasker::profiler single;
    const auto a = record(single, o.steps, d, 0);
    one.push_back(a.wall_ns);
    one_cpu.push_back(a.cpu_ns);
    tasker::profiler scraped;
    long texts = 0;
    const auto b = record_while_read(scraped, o.steps, d, texts);
    read.push_back(b.wall_ns);
    read_cpu.push_back(b.cpu_ns);
    renders.push_back(static_cast<double>(texts)
                      / (b.wall_ns * static_cast<double>(o.steps) / 1e9));
    clock_pair.push_back(cpu_clock_pair_ns(o.steps / 10));
  }
  const double none_ns = bench::median(none), one_ns = bench::median(one),
               read_ns = bench::median(read), pair_ns = bench::median(clock_pair);
  const double read_cpu_ns = bench::median(read_cpu);
  std::printf("                                            wall      thread CPU\n");
  std::printf("  no-op observer (loop, events, 5 calls)    %7.1f ns\n", none_ns);
  std::printf("  profiler, 1 thread                        %7.1f ns  %7.1f ns\n", one_ns,
              bench::median(one_cpu));
  std::printf("  profiler, 1 thread, text read meanwhile   %7.1f ns  %7.1f ns  (%.0f texts/s)\n",
              read_ns, read_cpu_ns, bench::median(renders));
  std::printf(
      "  CPU clock: two CLOCK_THREAD_CPUTIME_ID reads %6.1f ns (per measured handler run)\n",
      pair_ns);
  std::printf("target recording < 100 ns per step: alone %.1f ns %s, read meanwhile %.1f ns (CPU) "
              "%s\n",
              one_ns, one_ns < 100 ? "pass" : "MISS", read_cpu_ns,
              read_cpu_ns < 100 ? "pass" : "MISS");
  bench::table_row_absolute("profiler: recording per step (all hooks), 1 thread", "-",
                            bench::fmt(one_ns, "ns"), "< 100 ns", one_ns < 100);
  bench::table_row_absolute("profiler: recording per step, text read meanwhile (thread CPU)", "-",
                            bench::fmt(read_cpu_ns, "ns"), "< 100 ns", read_cpu_ns < 100);
  std::fflush(stdout);

  std::printf("runtime, memory store, %d no-op 4-step tasks per round (steps/s, creation "
              "included)\n",
              o.tasks);
  std::vector<double> off, on, off_cpu, on_cpu;
  runtime_round(false, o.tasks / 10);  // warm-up
  for (int r = 0; r < o.rounds; ++r) {
    // Alternating which goes first, so that neither always runs second.
    for (int k = 0; k < 2; ++k) {
      const bool profile = (r + k) % 2 == 1;
      const auto f = runtime_round(profile, o.tasks);
      (profile ? on : off).push_back(f.steps_per_second);
      (profile ? on_cpu : off_cpu).push_back(f.cpu_us_per_step);
    }
    std::printf(
        "  round %d: profile off %8.0f steps/s %5.2f us CPU/step   on %8.0f steps/s %5.2f us "
        "CPU/step\n",
        r + 1, off.back(), off_cpu.back(), on.back(), on_cpu.back());
    std::fflush(stdout);
  }
  const double off_m = bench::median(off), on_m = bench::median(on);
  const double off_c = bench::median(off_cpu), on_c = bench::median(on_cpu);
  std::printf("median: profile off %.0f steps/s, on %.0f steps/s: %+.1f %%\n", off_m, on_m,
              100.0 * (on_m - off_m) / off_m);
  std::printf("median process CPU per step (all threads): off %.2f us, on %.2f us: %+.2f us "
              "(%+.1f %%)\n",
              off_c, on_c, on_c - off_c, 100.0 * (on_c - off_c) / off_c);
  bench::table_row_info("profiler: no-op throughput, profile off vs on (its cost)",
                        bench::fmt(off_m, "steps/s", 0), bench::fmt(on_m, "steps/s", 0),
                        on_m / off_m);
  return 0;
}
