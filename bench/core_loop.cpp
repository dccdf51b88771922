// core_loop: how fast the core hands out and takes back steps, through the C
// ABI only. For each store and batch size it creates T tasks (half a linear
// 4-step pipeline, half a diamond), then polls and completes with no-op
// results until nothing is left, and checks every task ended complete.
//
//   core_loop [--tasks N] [--store memory|sqlite|all] [--batch N[,N...]]...
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <new>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "table.hpp"
#include <tasker/core.hpp>
#include <tasker/core_testing.h>
#include <tasker/test/temp_dir.hpp>

// Counts C++ heap allocations (operator new) in this process, the core's
// included: the figure behind "no allocation per event in steady state".
// SQLite's own allocations go through malloc and are not counted.
static std::atomic<std::int64_t> g_allocations{0};

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size))
    return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using clock_type = std::chrono::steady_clock;
using nlohmann::json;

struct options {
  long tasks = 0;  ///< 0: the store's default
  std::vector<std::string> stores{"memory", "sqlite"};
  std::vector<std::size_t> batches;
  bool unpooled = true;  ///< also run the unpooled-events baseline (batch 64)
};

struct run_stats {
  std::int64_t steps = 0;
  double create_seconds = 0;
  double loop_seconds = 0;
  std::int64_t loop_allocations = 0;  ///< operator new calls during the loop
  bool verified = false;
};

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "core_loop: %s\n"
               "usage: core_loop [--tasks N] [--store memory|sqlite|all] [--batch N[,N...]]... "
               "[--unpooled yes|no]\n",
               why);
  std::exit(2);
}

long parse_positive(const std::string& text, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v <= 0)
    usage((std::string("bad ") + what + ": " + text).c_str());
  return v;
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h")
      usage("help");
    if (i + 1 >= argc)
      usage(("missing value for " + arg).c_str());
    const std::string value = argv[++i];
    if (arg == "--unpooled") {
      if (value != "yes" && value != "no")
        usage("--unpooled takes yes or no");
      o.unpooled = value == "yes";
    } else if (arg == "--tasks") {
      o.tasks = parse_positive(value, "--tasks");
    } else if (arg == "--store") {
      if (value == "all")
        o.stores = {"memory", "sqlite"};
      else if (value == "memory" || value == "sqlite")
        o.stores = {value};
      else
        usage(("unknown store " + value).c_str());
    } else if (arg == "--batch") {
      std::stringstream list(value);
      std::string item;
      while (std::getline(list, item, ','))
        o.batches.push_back(static_cast<std::size_t>(parse_positive(item, "--batch")));
    } else {
      usage(("unknown option " + arg).c_str());
    }
  }
  if (o.batches.empty())
    o.batches = {1, 64};
  return o;
}

bool check(tk_status status, const tk_error& err, const char* what) {
  if (status == TK_OK)
    return true;
  std::fprintf(stderr, "core_loop: %s failed (%d): %s\n", what, static_cast<int>(status),
               err.message);
  return false;
}

std::string pipeline(const char* name, bool diamond) {
  json steps = json::array();
  auto step = [&](const char* n, std::vector<std::string> deps) {
    steps.push_back({{"name", n}, {"handler", "noop"}, {"dependencies", deps}});
  };
  step("a", {});
  step("b", {"a"});
  step("c", {diamond ? "a" : "b"});
  step("d", diamond ? std::vector<std::string>{"b", "c"} : std::vector<std::string>{"c"});
  return json{{"namespace", "bench"}, {"name", name}, {"version", "1"}, {"steps", steps}}.dump();
}

/// Counts tasks in `state` by paging through tk_list_tasks.
long count_tasks(tk_core* core, const char* state) {
  long count = 0;
  json after = nullptr;
  for (;;) {
    json filter{{"state", state}, {"limit", 1000}};
    if (!after.is_null())
      filter["after"] = after;
    tk_error err{};
    char* text = nullptr;
    if (!check(tk_list_tasks(core, filter.dump().c_str(), &text, &err), err, "tk_list_tasks"))
      return -1;
    json page = json::parse(text, nullptr, false);
    tk_free(text);
    if (page.is_discarded())
      return -1;
    count += static_cast<long>(page.at("tasks").size());
    after = page.at("next");
    if (after.is_null())
      return count;
  }
}

bool verify(tk_core* core, const std::vector<std::int64_t>& ids, const run_stats& stats) {
  bool ok = true;
  const auto expected_steps = static_cast<std::int64_t>(ids.size()) * 4;
  if (stats.steps != expected_steps) {
    std::fprintf(stderr, "core_loop: ran %lld steps, expected %lld\n",
                 static_cast<long long>(stats.steps), static_cast<long long>(expected_steps));
    ok = false;
  }
  const long complete = count_tasks(core, "complete");
  if (complete != static_cast<long>(ids.size())) {
    std::fprintf(stderr, "core_loop: %ld tasks complete, expected %zu\n", complete, ids.size());
    ok = false;
  }
  for (std::size_t i = 0; i < ids.size(); i += std::max<std::size_t>(1, ids.size() / 7)) {
    tk_error err{};
    char* text = nullptr;
    if (!check(tk_task_status(core, ids[i], &text, &err), err, "tk_task_status"))
      return false;
    json status = json::parse(text, nullptr, false);
    tk_free(text);
    if (status.is_discarded() || status.at("state") != "complete") {
      std::fprintf(stderr, "core_loop: task %lld is not complete\n",
                   static_cast<long long>(ids[i]));
      ok = false;
    }
  }
  return ok;
}

bool run(const std::string& store, std::size_t batch, long tasks, bool pooled, run_stats& stats) {
  tasker::test::temp_dir dir;
  const std::string url =
      store == "memory" ? "memory:" : "sqlite:" + (dir.path() / "bench.db").string();
  tk_error err{};
  auto core = tasker::core_handle::open(url.c_str(), err);
  if (!core) {
    check(err.code, err, "tk_open");
    return false;
  }
  bool ok = check(tk_register_pipeline(core, pipeline("linear", false).c_str(), &err), err,
                  "tk_register_pipeline")
            && check(tk_register_pipeline(core, pipeline("diamond", true).c_str(), &err), err,
                     "tk_register_pipeline");

  std::vector<std::int64_t> ids;
  ids.reserve(static_cast<std::size_t>(tasks));
  auto start = clock_type::now();
  for (long i = 0; ok && i < tasks; ++i) {
    tk_task_spec spec{};
    spec.namespace_name = "bench";
    spec.name = i % 2 == 0 ? "linear" : "diamond";
    spec.version = "1";
    std::int64_t id = 0;
    ok = check(tk_create_task(core, &spec, &id, nullptr, &err), err, "tk_create_task");
    ids.push_back(id);
  }
  stats.create_seconds = seconds_since(start);

  tk_worker_options worker_options{};
  worker_options.name = "bench";
  worker_options.lease_ms = 60000;
  tk_worker* worker = ok ? tk_worker_open(core, &worker_options, &err) : nullptr;
  ok = ok && worker != nullptr
       && check(tk_set_event_pooling(worker, pooled ? 1 : 0, &err), err, "tk_set_event_pooling");
  std::vector<tk_step_result> results(batch);
  std::vector<int> outcomes(batch);
  const auto allocations_before = g_allocations.load();
  start = clock_type::now();
  auto last_report = start;
  while (ok) {
    const tk_step_event* events = nullptr;
    std::size_t count = 0;
    ok = check(tk_poll(worker, batch, &events, &count, &err), err, "tk_poll");
    if (!ok || count == 0)
      break;
    for (std::size_t i = 0; i < count; ++i) {
      results[i] = tk_step_result{};
      results[i].step_id = events[i].step_id;
      results[i].fencing_token = events[i].fencing_token;
      results[i].kind = TK_RESULT_SUCCESS;
      results[i].result_json = "{}";
    }
    ok = check(tk_complete(worker, results.data(), count, outcomes.data(), &err), err,
               "tk_complete");
    for (std::size_t i = 0; ok && i < count; ++i)
      if (outcomes[i] != TK_OK) {
        std::fprintf(stderr, "core_loop: step %lld completed with outcome %d\n",
                     static_cast<long long>(results[i].step_id), outcomes[i]);
        ok = false;
      }
    stats.steps += static_cast<std::int64_t>(count);
    if (std::chrono::duration<double>(clock_type::now() - last_report).count() > 3.0) {
      last_report = clock_type::now();
      const double elapsed = seconds_since(start);
      std::printf("  ... %s batch %zu: %lld of %ld steps, %.1f s, %.0f steps/s\n", store.c_str(),
                  batch, static_cast<long long>(stats.steps), tasks * 4, elapsed,
                  static_cast<double>(stats.steps) / elapsed);
      std::fflush(stdout);
    }
  }
  stats.loop_seconds = seconds_since(start);
  stats.loop_allocations = g_allocations.load() - allocations_before;
  tk_worker_close(worker);
  stats.verified = ok && verify(core, ids, stats);
  return stats.verified;
}

}  // namespace

int main(int argc, char** argv) {
  const options opts = parse_args(argc, argv);
  std::printf("tasker core %s\n", tk_version());
  std::printf("%-7s %6s %-8s %7s %8s %10s %11s %9s %10s %12s\n", "store", "batch", "events",
              "tasks", "steps", "create_s", "tasks/s", "loop_s", "steps/s", "allocs/step");
  bool all_ok = true;
  std::map<std::pair<std::string, std::size_t>, double> rate;  // (store, batch) -> steps/s
  std::map<std::string, std::pair<double, double>> unpooled;   // store -> (steps/s, allocs/step)
  std::map<std::string, double> pooled_allocs;                 // store -> allocs/step at 64
  for (const auto& store : opts.stores) {
    const long tasks = opts.tasks > 0 ? opts.tasks : store == "memory" ? 200000 : 20000;
    std::vector<std::pair<std::size_t, bool>> runs;
    for (std::size_t batch : opts.batches)
      runs.emplace_back(batch, true);
    if (opts.unpooled)
      runs.emplace_back(64, false);
    for (auto [batch, pooled] : runs) {
      run_stats stats;
      const bool ok = run(store, batch, tasks, pooled, stats);
      all_ok = all_ok && ok;
      const double steps_per_s = static_cast<double>(stats.steps) / stats.loop_seconds;
      const double allocs = stats.steps ? static_cast<double>(stats.loop_allocations)
                                              / static_cast<double>(stats.steps)
                                        : 0.0;
      if (pooled) {
        rate[{store, batch}] = steps_per_s;
        if (batch == 64)
          pooled_allocs[store] = allocs;
      } else {
        unpooled[store] = {steps_per_s, allocs};
      }
      std::printf("%-7s %6zu %-8s %7ld %8lld %10.3f %11.0f %9.3f %10.0f %12.3f%s\n", store.c_str(),
                  batch, pooled ? "pooled" : "unpooled", tasks, static_cast<long long>(stats.steps),
                  stats.create_seconds, static_cast<double>(tasks) / stats.create_seconds,
                  stats.loop_seconds, steps_per_s, allocs, ok ? "" : "  FAILED verification");
      std::fflush(stdout);
    }
  }
  // The targets, where this run measured what they need.
  auto target = [&](const char* what, double value, double goal, const char* unit) {
    std::printf("target %-40s %12.1f %-8s (>= %.0f) %s\n", what, value, unit, goal,
                value >= goal ? "pass" : "MISS");
  };
  if (rate.count({"memory", 64}))
    target("memory steps/s at batch 64", rate[{"memory", 64}], 1'000'000, "steps/s");
  if (rate.count({"sqlite", 64}))
    target("sqlite steps/s at batch 64", rate[{"sqlite", 64}], 50'000, "steps/s");
  if (rate.count({"sqlite", 64}) && rate.count({"sqlite", 1}))
    target("sqlite batch 64 / batch 1", rate[{"sqlite", 64}] / rate[{"sqlite", 1}], 3, "x");
  // Rows of bench/run's table: each optimization against its baseline, same run.
  for (const auto& store : opts.stores) {
    if (rate.count({store, 64}) && rate.count({store, 1}))
      bench::table_row("batched poll/complete, " + store + " (batch 64 vs 1)",
                       bench::fmt(rate[{store, 1}], "steps/s", 0),
                       bench::fmt(rate[{store, 64}], "steps/s", 0),
                       rate[{store, 64}] / rate[{store, 1}], 1.1);
    if (unpooled.count(store) && rate.count({store, 64})) {
      bench::table_row("pooled event memory, " + store + ": steps/s",
                       bench::fmt(unpooled[store].first, "steps/s", 0),
                       bench::fmt(rate[{store, 64}], "steps/s", 0),
                       rate[{store, 64}] / unpooled[store].first, 1.1);
      bench::table_row("pooled event memory, " + store + ": allocations/step",
                       bench::fmt(unpooled[store].second, "allocs", 2),
                       bench::fmt(pooled_allocs[store], "allocs", 2),
                       unpooled[store].second / std::max(pooled_allocs[store], 0.01), 1.1);
    }
  }
  return all_ok ? 0 : 1;
}
