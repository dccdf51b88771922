// The PostgreSQL store with real worker processes (tests/runtime/pg_worker.cpp) on
// one machine, server and workers sharing its cores:
//   1. no-op steps/s with 1 and with 3 worker processes, draining a backlog
//      of linear 4-step tasks created beforehand (timed by the database:
//      first step started to last step finished); and, for comparison with
//      earlier figures, 3 processes draining it while it is being created;
//   2. latency of one linear 4-step task, creation to completion as a client
//      sees it (its task listener hears the end through NOTIFY), one task at
//      a time, P50/P99.
// The server is a throwaway one with PostgreSQL's durable defaults (fsync and
// synchronous_commit on), unless --url names another.
//
// Each throughput run also reports the CPU time it cost per step: the
// server's (its postmaster and every backend, found through the benchmark's
// own connection, so the server must run on this machine) and the worker
// processes'. On a machine whose cores the server and the workers share,
// server CPU per step is the figure that decides throughput, and it is far
// less noisy than steps/s.
//
//   pg_bench [--tasks N] [--samples N] [--workers N (default 3)] [--url postgresql://...] [--quick]
//            [--worker-arg --max-in-flight=512]... [--throughput-only N] [--latency-only]
//            [--worker PATH]
//
// --throughput-only N: only the N-worker throughput run (backlog first),
// N times, each with its CPU per step, then their medians. --worker PATH:
// the worker program of another build (a copy of build-release/tests/pg_worker
// made before a change), to compare two builds against the same server.
// --latency-only: only the latency run.
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>

#include "args.hpp"
#include "stats.hpp"
#include "table.hpp"
#include <tasker/core.hpp>
#include <tasker/test/temp_dir.hpp>

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  int tasks = 10000;  // per throughput run: 40,000 steps
  int samples = 300;
  int workers = 3;  // processes of the multi-worker runs
  std::string url;
  std::vector<std::string> worker_args;   // passed on to every worker process
  int throughput_only = 0;                // > 0: only that many N-worker throughput runs
  bool latency_only = false;              // only the latency run (durable)
  std::string worker = TASKER_PG_WORKER;  // --worker: another build's, to compare two builds
};

options& settings() {
  static options o;
  return o;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] { return bench::flag_value("pg_bench", argc, argv, i); };
    if (a == "--tasks")
      o.tasks = std::stoi(value());
    else if (a == "--samples")
      o.samples = std::stoi(value());
    else if (a == "--workers")
      o.workers = std::stoi(value());
    else if (a == "--url")
      o.url = value();
    else if (a == "--worker-arg")
      o.worker_args.push_back(value());
    else if (a == "--worker")
      o.worker = value();
    else if (a == "--latency-only")
      o.latency_only = true;
    else if (a == "--throughput-only")
      o.throughput_only = std::max(1, std::stoi(value()));
    else if (a == "--quick") {
      o.tasks = 2000;
      o.samples = 100;
    } else {
      std::fprintf(
          stderr, "usage: pg_bench [--tasks N] [--samples N] [--workers N] [--url URL] [--quick] "
                  "[--worker-arg ARG]... [--throughput-only N] [--latency-only] [--worker PATH]\n");
      std::exit(2);
    }
  }
  return o;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "pg_bench: %s\n", what.c_str());
  std::exit(1);
}

long long number(PGconn* c, const std::string& query) {
  PGresult* r = PQexec(c, query.c_str());
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
    die(query + ": " + PQresultErrorMessage(r));
  long long v = PQgetisnull(r, 0, 0) ? -1 : std::atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  return v;
}

/// CPU seconds a process and (with `children`) its reaped children used, from
/// /proc/PID/stat; -1 when it cannot be read. Its parent's pid in `ppid`.
double proc_cpu_s(const std::string& pid, bool children, long* ppid = nullptr) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(in, line))
    return -1;
  const auto close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos)
    return -1;
  std::istringstream f(line.substr(close + 2));
  std::string state;
  long parent = 0;
  f >> state >> parent;
  std::string skip;
  for (int field = 5; field < 14; ++field)
    f >> skip;
  long long utime = 0, stime = 0, cutime = 0, cstime = 0;
  f >> utime >> stime >> cutime >> cstime;
  if (!f)
    return -1;
  if (ppid)
    *ppid = parent;
  const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return static_cast<double>(utime + stime + (children ? cutime + cstime : 0)) / ticks;
}

/// CPU seconds the server has used so far: its postmaster (with the backends
/// that have exited, which it reaped) and its live processes. -1 if the
/// server is not on this machine.
double server_cpu_s(PGconn* c) {
  long postmaster = 0;
  if (proc_cpu_s(std::to_string(number(c, "SELECT pg_backend_pid()")), false, &postmaster) < 0)
    return -1;
  double total = proc_cpu_s(std::to_string(postmaster), true);
  if (total < 0)
    return -1;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    long parent = 0;
    const double cpu = proc_cpu_s(name, false, &parent);
    if (cpu >= 0 && parent == postmaster)
      total += cpu;
  }
  return total;
}

/// CPU seconds used by this process's reaped children.
double children_cpu_s() {
  rusage u{};
  ::getrusage(RUSAGE_CHILDREN, &u);
  auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

class worker_processes {
public:
  worker_processes(const std::string& url, int count) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
      if (std::strncmp(*e, "TASKER_", 7) != 0)
        env.emplace_back(*e);
    env.push_back("TASKER_STORE=" + url);
    env.push_back("TASKER_LOG_LEVEL=warn");
    std::vector<char*> envp;
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    for (int i = 0; i < count; ++i) {
      std::string path = settings().worker;
      std::string name = "--name=bench-" + std::to_string(i);
      std::vector<std::string> args = settings().worker_args;
      std::vector<char*> argv{path.data(), name.data()};
      for (auto& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      pid_t pid = 0;
      if (::posix_spawn(&pid, path.c_str(), nullptr, nullptr, argv.data(), envp.data()) != 0)
        die("cannot start " + path);
      pids_.push_back(pid);
    }
  }
  ~worker_processes() {
    for (pid_t p : pids_)
      ::kill(p, SIGTERM);
    for (pid_t p : pids_) {
      int status = 0;
      ::waitpid(p, &status, 0);
    }
  }
  worker_processes(const worker_processes&) = delete;
  worker_processes& operator=(const worker_processes&) = delete;

private:
  std::vector<pid_t> pids_;
};

tasker::core_handle open_core(const std::string& url) {
  tk_error err{};
  auto core = tasker::core_handle::open(url.c_str(), nullptr, err);
  if (!core)
    die(std::string("tk_open: ") + err.message);
  return core;
}

/// Waits until the workers registered mp/linear@1.
void wait_for_pipeline(tk_core* core) {
  const auto deadline = clock_type::now() + std::chrono::seconds(60);
  tk_task_spec spec{};
  spec.namespace_name = "mp";
  spec.name = "linear";
  spec.version = "1";
  spec.idempotency_key = "pg-bench-probe";
  for (;;) {
    std::int64_t id = 0;
    tk_error err{};
    if (tk_create_task(core, &spec, &id, nullptr, &err) == TK_OK)
      return;
    if (err.code != TK_NOT_FOUND || clock_type::now() > deadline)
      die(std::string("creating the probe task: ") + err.message);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

/// Creates `n` linear tasks in batches of 500.
void create_backlog(tk_core* core, int n) {
  std::vector<tk_task_spec> specs(500);
  for (auto& s : specs) {
    s.namespace_name = "mp";
    s.name = "linear";
    s.version = "1";
  }
  std::vector<std::int64_t> ids(specs.size());
  for (int done = 0; done < n;) {
    const auto k = static_cast<std::size_t>(std::min<int>(500, n - done));
    tk_error err{};
    if (tk_create_tasks(core, specs.data(), k, ids.data(), nullptr, &err) != TK_OK)
      die(std::string("tk_create_tasks: ") + err.message);
    done += static_cast<int>(k);
  }
}

struct throughput {
  double steps_per_s = 0;
  double wall_s = 0;
  double server_us_per_step = -1;  // server CPU in the run; -1: server not on this machine
  double worker_us_per_step = 0;   // the worker processes' CPU, start to exit
};

/// A backlog of `tasks` linear tasks drained by `workers` processes, in a
/// schema of its own. `backlog_first`: the backlog is created while no
/// worker runs (the workers of the probe are stopped first), so the timed
/// window holds only the steps' processing, as queue benchmarks measure it;
/// otherwise it is created while the workers already drain it, and the
/// creation competes with them for the server.
throughput run_throughput(const std::string& base, const std::string& schema, int workers,
                          int tasks, const std::string& extra = "", bool backlog_first = true) {
  const auto url = base + "?schema=" + schema + extra;
  auto core = open_core(url);
  PGconn* db = PQconnectdb(base.c_str());
  if (PQstatus(db) != CONNECTION_OK)
    die("connecting: " + std::string(PQerrorMessage(db)));
  PQclear(PQexec(db, "SET client_min_messages = warning"));  // no NOTICE of DROP ... CASCADE
  throughput out;
  long long first_id = 0;
  auto probe = [&] {
    wait_for_pipeline(core);
    // The probe task runs first.
    const auto probe_done = clock_type::now() + std::chrono::seconds(60);
    while (number(db, "SELECT count(*) FROM " + schema + ".tk_tasks WHERE state = 'complete'")
           < 1) {
      if (clock_type::now() > probe_done)
        die("the probe task did not complete");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    first_id = number(db, "SELECT max(id) FROM " + schema + ".tk_tasks");
  };
  if (backlog_first) {
    {
      worker_processes probers(url, 1);
      probe();
    }
    create_backlog(core, tasks);
  }
  // Each run starts right after a checkpoint, so that runs compare: one that
  // a checkpoint overlaps writes whole pages to the WAL and costs more. The
  // server may refuse (a --url server, a user without the right): it is
  // only for comparability.
  PQclear(PQexec(db, "CHECKPOINT"));
  const double workers_cpu_before = children_cpu_s();
  double server_cpu_before = server_cpu_s(db), server_cpu_after = -1;
  {
    worker_processes procs(url, workers);
    if (!backlog_first) {
      probe();
      create_backlog(core, tasks);
    }
    const auto started = clock_type::now();
    auto last_print = started;
    const std::string count_done = "SELECT count(*) FROM " + schema
                                   + ".tk_tasks WHERE state = 'complete' AND id > "
                                   + std::to_string(first_id);
    for (;;) {
      const auto done = number(db, count_done);
      if (done >= tasks)
        break;
      const auto now = clock_type::now();
      if (now - started > std::chrono::minutes(5))
        die("the backlog did not drain within 5 minutes (" + std::to_string(done) + " done)");
      if (now - last_print > std::chrono::seconds(5)) {
        std::printf("  ... %lld of %d tasks\n", done, tasks);
        std::fflush(stdout);
        last_print = now;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // its count costs the server too
    }
    server_cpu_after = server_cpu_s(db);
    const auto span_ms =
        number(db, "SELECT max(s.finished_at) - min(s.started_at) FROM " + schema
                       + ".tk_steps s WHERE s.task_id > " + std::to_string(first_id));
    out.wall_s = static_cast<double>(std::max<long long>(span_ms, 1)) / 1000.0;
    out.steps_per_s = 4.0 * tasks / out.wall_s;
    const auto twice =
        number(db, "SELECT count(*) FROM " + schema + ".tk_tasks WHERE steps_done <> 4 AND id > "
                       + std::to_string(first_id));
    if (twice != 0)
      die(std::to_string(twice) + " tasks did not record exactly 4 completions");
  }
  const double steps = 4.0 * tasks;
  out.worker_us_per_step = (children_cpu_s() - workers_cpu_before) * 1e6 / steps;
  if (server_cpu_before >= 0 && server_cpu_after >= 0)
    out.server_us_per_step = (server_cpu_after - server_cpu_before) * 1e6 / steps;
  // The schema goes, so that the runs after this one find the database as
  // this one did.
  PQclear(PQexec(db, ("DROP SCHEMA " + schema + " CASCADE").c_str()));
  PQfinish(db);
  return out;
}

struct waiter {
  std::mutex mu;
  std::condition_variable cv;
  std::int64_t done_id = 0;
  static void on_finished(void* self, std::int64_t id, const char*) {
    auto* w = static_cast<waiter*>(self);
    std::lock_guard<std::mutex> g{w->mu};
    w->done_id = std::max(w->done_id, id);
    w->cv.notify_all();
  }
};

/// One task at a time through `workers` idle worker processes.
std::vector<double> run_latency(const std::string& base, const std::string& schema, int workers,
                                int samples, const std::string& extra = "") {
  const auto url = base + "?schema=" + schema + extra;
  auto core = open_core(url);
  waiter w;
  tk_error err{};
  tk_set_task_listener(core, &waiter::on_finished, &w, &err);
  std::vector<double> out;
  {
    worker_processes procs(url, workers);
    wait_for_pipeline(core);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the probe finish
    tk_task_spec spec{};
    spec.namespace_name = "mp";
    spec.name = "linear";
    spec.version = "1";
    for (int i = 0; i < samples + 10; ++i) {  // the first 10 warm up
      const auto t0 = clock_type::now();
      std::int64_t id = 0;
      if (tk_create_task(core, &spec, &id, nullptr, &err) != TK_OK)
        die(std::string("tk_create_task: ") + err.message);
      std::unique_lock<std::mutex> g{w.mu};
      if (!w.cv.wait_for(g, std::chrono::seconds(30), [&] { return w.done_id >= id; }))
        die("task " + std::to_string(id) + " did not complete within 30 s");
      const auto us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
      if (i >= 10)
        out.push_back(us);
    }
  }
  PGconn* db = PQconnectdb(base.c_str());
  PQclear(PQexec(db, "SET client_min_messages = warning"));
  PQclear(PQexec(db, ("DROP SCHEMA " + schema + " CASCADE").c_str()));
  PQfinish(db);
  return out;
}

/// ", server CPU 61.2 us/step, workers' 20.3": what a throughput run cost.
std::string cpu_note(const throughput& r) {
  char buf[128];
  if (r.server_us_per_step >= 0)
    std::snprintf(buf, sizeof buf, "; CPU per step: server %.1f us, workers %.1f us",
                  r.server_us_per_step, r.worker_us_per_step);
  else
    std::snprintf(buf, sizeof buf, "; CPU per step: workers %.1f us (server not on this machine)",
                  r.worker_us_per_step);
  return buf;
}

void run_all(const std::string& base);

}  // namespace

int main(int argc, char** argv) {
  settings() = parse(argc, argv);
  const auto& o = settings();
  tasker::test::temp_dir dir;
  std::string base = o.url;
  const std::string server = (dir.path() / "pg").string();
  const bool own_server = base.empty();
  if (own_server) {
    const std::string cmd =
        std::string(TASKER_PG_SERVER_SCRIPT) + " start " + server + " --durable >/dev/null";
    if (std::system(cmd.c_str()) != 0)
      die("cannot start a PostgreSQL server (is the postgresql package installed?)");
    std::ifstream in(server + "/url");
    std::getline(in, base);
    if (base.empty() || base == "none")
      die("no PostgreSQL server binary: install the postgresql package");
  }
  std::printf(
      "PostgreSQL store, worker processes of tests/runtime/pg_worker.cpp, durable commits\n");
  std::fflush(stdout);

  if (o.latency_only) {
    const auto lat = run_latency(base, "bench_latency_only", 1, o.samples);
    std::printf("linear 4-step latency, 1 worker: P50 %.2f ms, P99 %.2f ms (%d tasks)\n",
                bench::percentile(lat, 0.50) / 1000.0, bench::percentile(lat, 0.99) / 1000.0,
                o.samples);
  } else if (o.throughput_only > 0) {
    std::vector<double> rates, server_cpu, worker_cpu;
    for (int k = 0; k < o.throughput_only; ++k) {
      const auto r = run_throughput(base, "bench_tpo" + std::to_string(k), o.workers, o.tasks);
      std::printf("throughput, %d worker processes, run %d: %9.0f steps/s (%.2f s)%s\n", o.workers,
                  k + 1, r.steps_per_s, r.wall_s, cpu_note(r).c_str());
      std::fflush(stdout);
      rates.push_back(r.steps_per_s);
      server_cpu.push_back(r.server_us_per_step);
      worker_cpu.push_back(r.worker_us_per_step);
    }
    std::printf("medians of %d runs: %.0f steps/s, server CPU %.1f us/step, workers' CPU %.1f "
                "us/step\n",
                o.throughput_only, bench::percentile(rates, 0.5),
                bench::percentile(server_cpu, 0.5), bench::percentile(worker_cpu, 0.5));
  } else {
    run_all(base);
  }
  if (own_server) {
    const std::string cmd =
        std::string(TASKER_PG_SERVER_SCRIPT) + " stop " + server + " >/dev/null";
    [[maybe_unused]] int rc = std::system(cmd.c_str());
  }
  return 0;
}

namespace {

void run_all(const std::string& base) {
  const auto& o = settings();
  const auto one = run_throughput(base, "bench_tp1", 1, o.tasks);
  std::printf("throughput, 1 worker process:   %9.0f steps/s (%d linear tasks, %.2f s)%s\n",
              one.steps_per_s, o.tasks, one.wall_s, cpu_note(one).c_str());
  std::fflush(stdout);
  const auto three = run_throughput(base, "bench_tp3", o.workers, o.tasks);
  std::printf("throughput, %d worker processes: %9.0f steps/s (%d linear tasks, %.2f s)%s\n",
              o.workers, three.steps_per_s, o.tasks, three.wall_s, cpu_note(three).c_str());
  std::printf("  %d vs 1: %.2fx\n", o.workers, three.steps_per_s / one.steps_per_s);
  const auto overlapped = run_throughput(base, "bench_tp3o", o.workers, o.tasks, "", false);
  std::printf("throughput, %d worker processes, backlog created while they drain it: %9.0f steps/s "
              "(%.2f s)\n",
              o.workers, overlapped.steps_per_s, overlapped.wall_s);
  std::fflush(stdout);
  const auto lat = run_latency(base, "bench_latency", 1, o.samples);
  std::printf("linear 4-step latency, 1 worker, creation to completion seen by the client:\n");
  std::printf("  P50 %.2f ms, P99 %.2f ms (%d tasks one at a time)\n",
              bench::percentile(lat, 0.50) / 1000.0, bench::percentile(lat, 0.99) / 1000.0,
              o.samples);
  const double best = std::max(one.steps_per_s, three.steps_per_s);
  const double p50_ms = bench::percentile(lat, 0.50) / 1000.0;
  std::fflush(stdout);

  // The same with async_worker_commits (claims and completions do not wait
  // for the WAL flush; creation stays durable).
  std::printf("with async_worker_commits (workers' commits do not wait for the WAL flush):\n");
  std::fflush(stdout);
  const auto three_async =
      run_throughput(base, "bench_tp3a", o.workers, o.tasks, "&async_worker_commits=on");
  std::printf("throughput, %d worker processes: %9.0f steps/s (%d linear tasks, %.2f s)%s\n",
              o.workers, three_async.steps_per_s, o.tasks, three_async.wall_s,
              cpu_note(three_async).c_str());
  std::fflush(stdout);
  const auto lat_async =
      run_latency(base, "bench_latency_a", 1, o.samples, "&async_worker_commits=on");
  std::printf("linear 4-step latency, 1 worker: P50 %.2f ms, P99 %.2f ms\n",
              bench::percentile(lat_async, 0.50) / 1000.0,
              bench::percentile(lat_async, 0.99) / 1000.0);
  bench::table_row_absolute("PostgreSQL: no-op steps/s, best of 1 and 3 workers",
                            "graphile-worker ~2000, BullMQ/Redis ~9000",
                            bench::fmt(best, "steps/s", 0), ">= 20000 steps/s", best >= 20000);
  bench::table_row_absolute("PostgreSQL: linear 4-step P50", "graphile-worker ~10.7 ms",
                            bench::fmt(p50_ms, "ms", 2), "<= 3 ms", p50_ms <= 3.0);
  std::printf("targets (durable): >= 20000 steps/s: %s (%.0f); P50 <= 3 ms: %s (%.2f)\n",
              best >= 20000 ? "pass" : "MISS", best, p50_ms <= 3.0 ? "pass" : "MISS", p50_ms);
}

}  // namespace
