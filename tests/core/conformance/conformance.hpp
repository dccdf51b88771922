// The store conformance suite: every case runs against every store, through
// the C ABI only. A store is done when this suite passes. One file per group
// (pipelines, retries, leases, tasks, task retries, wake-ups, end to end,
// waits), one executable: core_conformance_test (memory, SQLite) and, built
// again with TASKER_CONFORMANCE_PG, core_conformance_pg_test (PostgreSQL).
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tasker/test/core.hpp>
#include <tasker/test/pg.hpp>

namespace tasker::test::conformance {

struct memory_store {
  static std::string url(const temp_dir&) { return "memory:"; }
};

struct sqlite_store {
  static std::string url(const temp_dir& dir) { return "sqlite:" + dir.file("tasker.db"); }
};

// The same suite, built a second time with TASKER_CONFORMANCE_PG, runs against
// PostgreSQL (a fresh schema per case on the test server).
struct pg_store {
  static std::string url(const temp_dir&) { return fresh_pg_url(); }
};

}  // namespace tasker::test::conformance

// Unqualified, so the ctest names read <memory_store>, <sqlite_store>, <pg_store>.
using tasker::test::conformance::memory_store;
using tasker::test::conformance::pg_store;
using tasker::test::conformance::sqlite_store;

TYPE_TO_STRING(memory_store);
TYPE_TO_STRING(sqlite_store);
TYPE_TO_STRING(pg_store);

#ifdef TASKER_CONFORMANCE_PG
#define TASKER_STORES pg_store
#else
#define TASKER_STORES memory_store, sqlite_store
#endif

namespace tasker::test::conformance {

template <class Store>
struct store_env {
  temp_dir dir;
  manual_clock clock;
  core_handle core;

  explicit store_env(const char* options = nullptr) {
    core = open_core(Store::url(dir), options);
    use_clock(core, clock);
  }

  /// Registers `steps` as test/flow@1.
  void register_flow(const std::vector<step_spec>& steps, std::string_view ns = "test",
                     std::string_view name = "flow") {
    register_pipeline(core, pipeline_json(ns, name, steps));
  }
};

/// Registers a pipeline that must be rejected; returns the error message.
inline std::string rejected_message(tk_core* core, const std::string& pipeline,
                                    tk_status expected) {
  tk_error err{};
  INFO("pipeline: ", pipeline);
  CHECK(tk_register_pipeline(core, pipeline.c_str(), &err) == expected);
  CHECK(err.code == expected);
  CHECK(std::strlen(err.message) > 0);
  return err.message;
}

inline bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

inline std::vector<std::string> names_of(const std::vector<claimed_step>& steps) {
  std::vector<std::string> out;
  for (const auto& s : steps)
    out.push_back(s.step_name);
  std::sort(out.begin(), out.end());
  return out;
}

struct wakeup_counter {
  int calls = 0;
  static void on_wakeup(void* self) { ++static_cast<wakeup_counter*>(self)->calls; }
};

/// Records every (task, final state) the task listener reports.
struct finished_log {
  std::vector<std::pair<std::int64_t, std::string>> seen;
  static void on_finished(void* self, std::int64_t task_id, const char* state) {
    static_cast<finished_log*>(self)->seen.emplace_back(task_id, state);
  }
};

}  // namespace tasker::test::conformance

using namespace tasker::test;
using namespace tasker::test::conformance;
