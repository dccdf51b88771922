// One core driving the C ABI alone (no runtime, no other process): the cost
// of each store call of a worker's life on one linear 4-step task at a time.
// Any store URL; it is meant for PostgreSQL, where a call is round trips.
//
//   pg_cycle URL [--tasks N] [--grow N]      e.g. pg_cycle
//   'postgresql://tasker@127.0.0.1:5432/tasker?schema=cyc'
//
// --grow N: then N more tasks are run to the end in batches, by the same
// core on the same connection (so with the plans it made while the tables
// were small), and the same calls are measured again: a plan that walks a
// whole table shows as calls that grew with it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "stats.hpp"
#include <tasker/core.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

double micros(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

[[noreturn]] void die(const char* what, const tk_error& err) {
  std::fprintf(stderr, "pg_cycle: %s: %s\n", what, err.message);
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: pg_cycle URL [--tasks N] [--grow N]\n");
    return 2;
  }
  int tasks = 300, grow = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--tasks")
      tasks = std::atoi(argv[i + 1]);
    else if (std::string(argv[i]) == "--grow")
      grow = std::atoi(argv[i + 1]);
  }
  tk_error err{};
  auto core = tasker::core_handle::open(argv[1], nullptr, err);
  if (!core)
    die("tk_open", err);
  const char* pipeline =
      R"({"namespace":"cycle","name":"linear","version":"1","steps":[)"
      R"({"name":"a","handler":"h"},{"name":"b","handler":"h","dependencies":["a"]},)"
      R"({"name":"c","handler":"h","dependencies":["b"]},)"
      R"({"name":"d","handler":"h","dependencies":["c"]}]})";
  if (tk_register_pipeline(core, pipeline, &err) != TK_OK)
    die("tk_register_pipeline", err);
  tk_worker_options options{};
  options.name = "cycle";
  options.lease_ms = 30000;
  tk_worker* w = tk_worker_open(core, &options, &err);
  if (!w)
    die("tk_worker_open", err);
  tk_task_spec spec{};
  spec.namespace_name = "cycle";
  spec.name = "linear";
  spec.version = "1";
  auto measure = [&] {
    std::vector<double> create, poll, cycle, due;
    for (int i = 0; i < tasks; ++i) {
      const auto t0 = clock_type::now();
      std::int64_t id = 0;
      if (tk_create_task(core, &spec, &id, nullptr, &err) != TK_OK)
        die("tk_create_task", err);
      const auto t1 = clock_type::now();
      const tk_step_event* events = nullptr;
      std::size_t n = 0;
      if (tk_poll(w, 16, &events, &n, &err) != TK_OK)
        die("tk_poll", err);
      const auto t2 = clock_type::now();
      create.push_back(micros(t0, t1));
      poll.push_back(micros(t1, t2));
      while (n > 0) {
        tk_step_result r{};
        r.step_id = events[0].step_id;
        r.fencing_token = events[0].fencing_token;
        r.kind = TK_RESULT_SUCCESS;
        r.result_json = "1";
        int outcome = 0;
        const auto a = clock_type::now();
        if (tk_complete_and_poll(w, &r, 1, &outcome, 16, &events, &n, &err) != TK_OK)
          die("tk_complete_and_poll", err);
        cycle.push_back(micros(a, clock_type::now()));
      }
      std::int64_t delay = 0;
      const auto d0 = clock_type::now();
      if (tk_next_due(w, &delay, &err) != TK_OK)
        die("tk_next_due", err);
      due.push_back(micros(d0, clock_type::now()));
    }
    std::printf("medians over %d linear tasks: create %.0f us, poll %.0f us, "
                "complete_and_poll %.0f us, next_due %.0f us\n",
                tasks, bench::median(create), bench::median(poll), bench::median(cycle),
                bench::median(due));
    std::fflush(stdout);
  };
  measure();
  if (grow > 0) {
    std::vector<tk_task_spec> specs(500, spec);
    std::vector<std::int64_t> ids(specs.size());
    std::vector<tk_step_result> results;
    std::vector<int> outcomes;
    for (int done = 0; done < grow;) {
      const auto k = static_cast<std::size_t>(std::min(500, grow - done));
      if (tk_create_tasks(core, specs.data(), k, ids.data(), nullptr, &err) != TK_OK)
        die("tk_create_tasks", err);
      done += static_cast<int>(k);
      const tk_step_event* events = nullptr;
      std::size_t n = 0;
      if (tk_poll(w, 64, &events, &n, &err) != TK_OK)
        die("tk_poll", err);
      while (n > 0) {
        results.assign(n, tk_step_result{});
        outcomes.assign(n, 0);
        for (std::size_t j = 0; j < n; ++j) {
          results[j].step_id = events[j].step_id;
          results[j].fencing_token = events[j].fencing_token;
          results[j].kind = TK_RESULT_SUCCESS;
          results[j].result_json = "1";
        }
        if (tk_complete_and_poll(w, results.data(), n, outcomes.data(), 64, &events, &n, &err)
            != TK_OK)
          die("tk_complete_and_poll", err);
      }
    }
    std::printf("after %d more tasks, same connection:\n", grow);
    measure();
  }
  tk_worker_close(w);
  return 0;
}
