// What only the PostgreSQL store has: several cores (as several processes
// would) on one database at the same moment, LISTEN/NOTIFY between them,
// migrations raced at start-up, and a server that goes away and comes back.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>

#include "model/wait_token.hpp"
#include <tasker/test/core.hpp>
#include <tasker/test/pg.hpp>

using namespace tasker::test;
using namespace std::chrono_literals;

namespace {

/// Counts wake-ups and finished tasks reported to one core's callbacks.
struct observer {
  std::mutex mu;
  std::condition_variable cv;
  int wakeups = 0;
  std::vector<std::pair<std::int64_t, std::string>> finished;

  static void on_wakeup(void* self) {
    auto* o = static_cast<observer*>(self);
    std::lock_guard<std::mutex> g{o->mu};
    ++o->wakeups;
    o->cv.notify_all();
  }
  static void on_finished(void* self, std::int64_t id, const char* state) {
    auto* o = static_cast<observer*>(self);
    std::lock_guard<std::mutex> g{o->mu};
    o->finished.emplace_back(id, state);
    o->cv.notify_all();
  }
  void attach(tk_core* core) {
    tk_error err{};
    REQUIRE(tk_set_wakeup(core, &observer::on_wakeup, this, &err) == TK_OK);
    REQUIRE(tk_set_task_listener(core, &observer::on_finished, this, &err) == TK_OK);
  }
  /// Waits up to `limit` for `pred` (under the lock); true when it held.
  template <class Pred>
  bool wait_for(Pred pred, std::chrono::milliseconds limit = 10s) {
    std::unique_lock<std::mutex> g{mu};
    return cv.wait_for(g, limit, pred);
  }
  int wakeup_count() {
    std::lock_guard<std::mutex> g{mu};
    return wakeups;
  }
};

/// A direct libpq connection, for looking at the rows themselves.
class sql {
public:
  explicit sql(const std::string& url) : c_(PQconnectdb(url.c_str())) {
    REQUIRE(PQstatus(c_) == CONNECTION_OK);
  }
  ~sql() { PQfinish(c_); }
  sql(const sql&) = delete;
  sql& operator=(const sql&) = delete;
  /// The first column of the first row, as text.
  std::string value(const std::string& query) {
    PGresult* r = PQexec(c_, query.c_str());
    INFO(query, ": ", PQresultErrorMessage(r));
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    std::string out = PQntuples(r) ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    return out;
  }
  /// Runs statements that return no rows.
  void exec(const std::string& statements) {
    PGresult* r = PQexec(c_, statements.c_str());
    INFO(statements, ": ", PQresultErrorMessage(r));
    CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
  }

private:
  PGconn* c_;
};

std::string schema_of(const std::string& url) {
  return url.substr(url.find("schema=") + 7);
}

/// Waits until `listening`'s LISTEN connection is up (it runs on a thread of
/// its own, connecting while the test goes on): `other` creates a task of
/// ping/flow until `seen` reports a wake-up for it.
void wait_listening(observer& seen, tk_core* other) {
  register_pipeline(other, pipeline_json("ping", "flow", linear_steps()));
  task_args ping;
  ping.ns = "ping";
  const int before = seen.wakeup_count();
  for (int round = 0; round < 100; ++round) {
    create_task(other, ping);
    if (seen.wait_for([&] { return seen.wakeups > before; }, 100ms))
      return;
  }
  FAIL("no notification reached the listening core");
}

std::int64_t create_diamond_task(tk_core* core) {
  task_args a;
  return create_task(core, a);
}

}  // namespace

TEST_CASE("a task created through one core wakes a worker on another, and its end reaches the "
          "first core's listener"
          * doctest::timeout(60)) {
  const auto url = fresh_pg_url();
  auto maker = open_core(url), runner = open_core(url);
  observer at_maker, at_runner;
  at_maker.attach(maker);
  at_runner.attach(runner);
  register_pipeline(maker, pipeline_json("test", "flow", linear_steps()));

  wait_listening(at_runner, maker);
  wait_listening(at_maker, runner);
  const int before = at_runner.wakeup_count();
  const auto id = create_diamond_task(maker);
  CHECK(at_runner.wait_for([&] { return at_runner.wakeups > before; }));

  worker_handle w(runner, "runner", 0, {"test"});
  for (int step = 0; step < 4; ++step) {
    auto got = poll(w, 10);
    REQUIRE(got.size() == 1);
    REQUIRE(succeed(w, got[0], "1") == TK_OK);
  }
  CHECK(task_state(maker, id) == "complete");
  CHECK(at_maker.wait_for([&] {
    for (const auto& [task, state] : at_maker.finished)
      if (task == id && state == "complete")
        return true;
    return false;
  }));
}

/// Creates a task through `maker` and cancels it, then waits until `seen`
/// hears of its end: a task's end travels on the same connection after the
/// NOTIFYs `maker` sent before, so those have then reached `seen`'s
/// listener, or were not listened for.
void sync_through_done(observer& seen, tk_core* maker, const task_args& a = {}) {
  const auto marker = create_task(maker, a);
  tk_error err{};
  REQUIRE(tk_cancel_task(maker, marker, &err) == TK_OK);
  REQUIRE(seen.wait_for([&] {
    for (const auto& [task, state] : seen.finished)
      if (task == marker)
        return true;
    return false;
  }));
}

TEST_CASE("a saturated worker stops listening for new work, and listening again it is woken for "
          "what came meanwhile"
          * doctest::timeout(60)) {
  const auto url = fresh_pg_url();
  auto maker = open_core(url), runner = open_core(url);
  observer at_runner;
  at_runner.attach(runner);
  register_pipeline(maker, pipeline_json("test", "flow", {{"a"}}));
  for (int i = 0; i < 4; ++i)
    create_task(maker);
  worker_handle w(runner, "busy", 0, {"test"});
  REQUIRE(poll(w, 2).size() == 2);
  REQUIRE(poll(w, 2).size() == 2);  // two full claims in a row: saturated
  // The listener stops listening at the start of its next round: the round
  // that hears the first marker's end may have begun before, and the next
  // may still hear the second marker's work, sent before it began; a wake-up
  // comes after the end it was heard with. After a third marker, no wake-up
  // can be on its way.
  for (int k = 0; k < 3; ++k)
    sync_through_done(at_runner, maker);
  const int quiet = at_runner.wakeup_count();
  const auto unheard = create_task(maker);
  sync_through_done(at_runner, maker);
  CHECK(at_runner.wakeup_count() == quiet);  // neither that task nor the markers woke it
  // Not full: it listens again, and is woken once for what it may have missed.
  auto got = poll(w, 10);
  REQUIRE(got.size() == 1);  // the markers were cancelled
  CHECK(got[0].task_id == unheard);
  CHECK(at_runner.wait_for([&] { return at_runner.wakeups > quiet; }));
  // And it hears new work as before.
  const int after = at_runner.wakeup_count();
  create_task(maker);
  CHECK(at_runner.wait_for([&] { return at_runner.wakeups > after; }));
}

TEST_CASE("a worker is woken by new work in the namespaces it claims from, not by others'"
          * doctest::timeout(60)) {
  const auto url = fresh_pg_url();
  auto maker = open_core(url), runner = open_core(url);
  observer at_runner;
  at_runner.attach(runner);
  register_pipeline(maker, pipeline_json("alpha", "flow", linear_steps()));
  register_pipeline(maker, pipeline_json("beta", "flow", linear_steps()));
  wait_listening(at_runner, maker);
  worker_handle w(runner, "alpha-only", 0, {"alpha"});
  CHECK(poll(w, 10).empty());  // from now on it serves alpha
  task_args beta;
  beta.ns = "beta";
  task_args alpha;
  alpha.ns = "alpha";
  const int before = at_runner.wakeup_count();
  create_task(maker, beta);
  sync_through_done(at_runner, maker, beta);  // it heard (and ignored) the beta work
  const int after_marker = at_runner.wakeup_count();
  create_task(maker, alpha);
  REQUIRE(at_runner.wait_for([&] { return at_runner.wakeups > before; }));
  INFO("before ", before, ", after the marker ", after_marker);
  CHECK(at_runner.wakeup_count() == before + 1);
  CHECK(poll(w, 10).size() == 1);
}

TEST_CASE("one completion hands its children on and claims queued work in the same statement"
          * doctest::timeout(60)) {
  const auto url = fresh_pg_url();
  auto core = open_core(url);
  register_pipeline(core, pipeline_json("test", "flow", {{"a"}, {"b", {"a"}}, {"c", {"a"}}}));
  const auto first = create_task(core);
  worker_handle w(core, "w1");
  auto a = poll_one(w);
  REQUIRE(a.task_id == first);
  const auto queued = create_task(core);
  CHECK(task_state(core, queued) == "pending");
  std::vector<int> outcomes;
  const auto got = complete_and_poll(w, {success_result(a, R"({"v":1})")}, outcomes);
  CHECK(outcomes == std::vector<int>{TK_OK});
  REQUIRE(got.size() == 3);
  // The children a released first (handed on), then the queue's oldest step.
  CHECK(got[0].task_id == first);
  CHECK(got[1].task_id == first);
  CHECK(got[0].step_name == "b");
  CHECK(got[1].step_name == "c");
  CHECK(got[0].dependency_results.at("a") == json{{"v", 1}});
  CHECK(got[2].task_id == queued);
  CHECK(got[2].step_name == "a");
  CHECK(task_state(core, queued) == "running");  // the claim moved it, as any claim does
  for (const auto& s : got)
    CHECK(step_status(task_status(core, s.task_id), s.step_name).at("state") == "running");
}

TEST_CASE("two parents completed at the same moment on two cores release the join exactly once"
          * doctest::timeout(120)) {
  const auto url = fresh_pg_url();
  auto one = open_core(url), two = open_core(url);
  register_pipeline(one, pipeline_json("test", "flow", diamond_steps()));
  worker_handle w1(one, "w1"), w2(two, "w2");
  constexpr int rounds = 40;
  for (int round = 0; round < rounds; ++round) {
    const auto id = create_diamond_task(one);
    auto a = poll(w1, 10);
    REQUIRE(a.size() == 1);
    REQUIRE(succeed(w1, a[0], "1") == TK_OK);
    auto b = poll(w1, 1);
    auto c = poll(w2, 1);
    REQUIRE(b.size() == 1);
    REQUIRE(c.size() == 1);
    // Both completions start together.
    std::atomic<int> go{0};
    int s1 = TK_INTERNAL, s2 = TK_INTERNAL;
    std::thread t1([&] {
      ++go;
      while (go.load() < 2) {
      }
      s1 = succeed(w1, b[0], "2");
    });
    std::thread t2([&] {
      ++go;
      while (go.load() < 2) {
      }
      s2 = succeed(w2, c[0], "3");
    });
    t1.join();
    t2.join();
    REQUIRE(s1 == TK_OK);
    REQUIRE(s2 == TK_OK);
    auto d1 = poll(w1, 10);
    auto d2 = poll(w2, 10);
    INFO("round ", round);
    REQUIRE(d1.size() + d2.size() == 1);
    auto& d = d1.empty() ? d2[0] : d1[0];
    CHECK(d.step_name == "d");
    CHECK(d.dependency_results == json{{"a", 1}, {"b", 2}, {"c", 3}});
    REQUIRE(succeed(d1.empty() ? w2 : w1, d, "4") == TK_OK);
    CHECK(task_state(two, id) == "complete");
  }
  sql db(pg_base_url());
  const auto schema = schema_of(url);
  CHECK(db.value("SELECT count(*) FROM " + schema + ".tk_tasks WHERE steps_done <> 4") == "0");
  CHECK(db.value("SELECT count(*) FROM " + schema + ".tk_steps WHERE attempts <> 1") == "0");
}

TEST_CASE("workers that start together on a new schema create it once" * doctest::timeout(60)) {
  const auto url = fresh_pg_url();
  constexpr int n = 6;
  std::vector<core_handle> cores(n);
  std::vector<std::string> errors(n);
  std::atomic<int> go{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      ++go;
      while (go.load() < n) {
      }
      tk_error err{};
      cores[static_cast<std::size_t>(i)] = core_handle::open(url.c_str(), err);
      errors[static_cast<std::size_t>(i)] = err.message;
    });
  for (auto& t : threads)
    t.join();
  for (int i = 0; i < n; ++i) {
    INFO("core ", i, ": ", errors[static_cast<std::size_t>(i)]);
    CHECK(cores[static_cast<std::size_t>(i)]);
  }
  // All of them register the same pipeline at once too: one row.
  const auto pipeline = pipeline_json("test", "flow", linear_steps());
  threads.clear();
  std::atomic<int> ok{0};
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      tk_error err{};
      if (cores[static_cast<std::size_t>(i)]
          && tk_register_pipeline(cores[static_cast<std::size_t>(i)], pipeline.c_str(), &err)
                 == TK_OK)
        ++ok;
    });
  for (auto& t : threads)
    t.join();
  CHECK(ok.load() == n);
  cores.clear();
  sql db(pg_base_url());
  const auto schema = schema_of(url);
  CHECK(db.value("SELECT count(*) FROM " + schema + ".tk_schema") == "1");
  CHECK(db.value("SELECT version FROM " + schema + ".tk_schema") == "4");
  CHECK(db.value("SELECT count(*) FROM " + schema + ".tk_meta") == "1");
  CHECK(db.value("SELECT count(*) FROM " + schema + ".tk_pipelines") == "1");
}

TEST_CASE("the same idempotency key from two cores at once makes one task" * doctest::timeout(60)) {
  const auto url = fresh_pg_url();
  auto one = open_core(url), two = open_core(url);
  register_pipeline(one, pipeline_json("test", "flow", linear_steps()));
  for (int round = 0; round < 20; ++round) {
    const std::string key = "order-" + std::to_string(round);
    task_args a;
    a.idempotency_key = key.c_str();
    std::int64_t id1 = 0, id2 = 0;
    int created1 = -1, created2 = -1;
    tk_status s1 = TK_INTERNAL, s2 = TK_INTERNAL;
    std::atomic<int> go{0};
    std::thread t1([&] {
      ++go;
      while (go.load() < 2) {
      }
      tk_error e1{};
      s1 = try_create_task(one, a, id1, &created1, e1);
    });
    std::thread t2([&] {
      ++go;
      while (go.load() < 2) {
      }
      tk_error e2{};
      s2 = try_create_task(two, a, id2, &created2, e2);
    });
    t1.join();
    t2.join();
    REQUIRE(s1 == TK_OK);
    REQUIRE(s2 == TK_OK);
    CHECK(id1 == id2);
    CHECK(created1 + created2 == 1);
  }
}

TEST_CASE("a bad schema name or an unreachable server is a clear error" * doctest::timeout(60)) {
  tk_error err{};
  CHECK(tk_open((pg_base_url() + "?schema=Robert');DROP").c_str(), nullptr, &err) == nullptr);
  CHECK(err.code == TK_INVALID_ARGUMENT);
  CHECK(std::string(err.message).find("schema") != std::string::npos);

  CHECK(tk_open(pg_base_url().c_str(), R"({"schema":7})", &err) == nullptr);
  CHECK(err.code == TK_INVALID_ARGUMENT);

  // Port 1 on loopback: nobody listens there.
  CHECK(tk_open("postgresql://tasker@127.0.0.1:1/tasker?connect_timeout=5", nullptr, &err)
        == nullptr);
  CHECK(err.code == TK_STORE_ERROR);
  CHECK(std::string(err.message).find("cannot connect") != std::string::npos);
}

TEST_CASE("after a server restart the next call reconnects and notifications flow again"
          * doctest::timeout(180)) {
  // A server of its own: restarting the shared one would disturb the other suites.
  temp_dir dir;
  own_pg_server server(TASKER_PG_SERVER_SCRIPT, dir.file("pg"));
  const std::string base = server.url();
  const auto url = base + "?schema=restart";
  auto maker = open_core(url), runner = open_core(url);
  observer at_runner;
  at_runner.attach(runner);
  register_pipeline(maker, pipeline_json("test", "flow", linear_steps()));
  const auto first = create_diamond_task(maker);

  const int before_restart = at_runner.wakeup_count();
  REQUIRE(server.restart());

  // The runner's LISTEN connection comes back by itself, and says so with a
  // wake-up (whatever was notified meanwhile is lost).
  REQUIRE(at_runner.wait_for([&] { return at_runner.wakeups > before_restart; }, 30s));
  const int after_reconnect = at_runner.wakeup_count();
  // The maker's connection died with the server; its next call reconnects
  // before it starts, so it succeeds, and its NOTIFY reaches the runner.
  std::int64_t second = 0;
  int created = 0;
  tk_error err{};
  CHECK(try_create_task(maker, task_args{}, second, &created, err) == TK_OK);
  CHECK(second > first);
  CHECK(at_runner.wait_for([&] { return at_runner.wakeups > after_reconnect; }, 30s));
  worker_handle w(runner, "after-restart");
  CHECK(poll(w, 10).size() == 2);
}

/// Turns a schema of version 4 back into one of version 2, as that version
/// made it: no dynamic steps (version 4), step ids from an identity column,
/// steps found by (task_id, idx) (version 3). `old_id` gives each step its
/// version-2 id, from (task id, index).
template <class OldId>
void downgrade_to_v2(const std::string& schema, OldId old_id) {
  sql db(pg_base_url());
  const auto steps = schema + ".tk_steps";
  db.exec("ALTER TABLE " + steps + " DROP COLUMN tmpl, DROP COLUMN name, DROP COLUMN inputs");
  db.exec("ALTER TABLE " + schema + ".tk_tasks DROP COLUMN steps_total");
  db.exec("UPDATE " + steps
          + " SET id = -id, claim_seq = claim_seq - 4294967296 "
            "WHERE claim_seq >= 4294967296");
  db.exec("UPDATE " + steps + " SET id = -id WHERE id > 0");
  const auto rows = std::stoi(db.value("SELECT count(*) FROM " + steps));
  for (int k = 0; k < rows; ++k) {
    const auto id = db.value("SELECT id FROM " + steps + " WHERE id < 0 ORDER BY id DESC LIMIT 1");
    const auto task = std::stoll(db.value("SELECT task_id FROM " + steps + " WHERE id = " + id));
    const auto idx = std::stoll(db.value("SELECT idx FROM " + steps + " WHERE id = " + id));
    db.exec("UPDATE " + steps + " SET id = " + std::to_string(old_id(task, idx))
            + " WHERE id = " + id);
  }
  db.exec("ALTER TABLE " + steps
          + " ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (START WITH 100000); "
            "ALTER TABLE "
          + steps + " ADD CONSTRAINT tk_steps_task_id_idx_key UNIQUE (task_id, idx); "
          + "CREATE INDEX tk_steps_pending ON " + steps + " (task_id) WHERE state = 'pending'; "
          + "DROP TABLE " + schema + ".tk_step_alias; UPDATE " + schema
          + ".tk_schema SET version = 2");
}

TEST_CASE("a version 1 schema is migrated in place and its tasks can wait" * doctest::timeout(60)) {
  const auto url = fresh_pg_url();
  manual_clock clock;
  std::int64_t id = 0;
  {
    auto core = open_core(url);
    register_pipeline(core, pipeline_json("test", "flow", {{"a"}}));
    id = create_task(core);
  }
  const auto schema = schema_of(url);
  downgrade_to_v2(schema, [](std::int64_t task, std::int64_t idx) { return task * 10 + idx; });
  {
    sql db(pg_base_url());
    db.exec("DROP INDEX " + schema + ".tk_steps_wait; ALTER TABLE " + schema
            + ".tk_steps DROP COLUMN wait_name, DROP COLUMN signal, DROP COLUMN signal_seq, "
              "DROP COLUMN resume; DROP TABLE "
            + schema + ".tk_meta; UPDATE " + schema + ".tk_schema SET version = 1");
  }
  auto core = open_core(url);
  use_clock(core, clock);
  worker_handle w(core, "after-migration");
  auto a = poll_one(w);
  CHECK(a.task_id == id);
  REQUIRE(wait_for(w, a, "approval", 60000) == TK_OK);
  auto other = open_core(url);  // tokens are checked by any core on the schema
  tk_error err{};
  REQUIRE(signal(other, a.wait_token, "true", err) == TK_OK);
  auto resumed = poll_one(w);
  CHECK(resumed.signal_payload == true);
  CHECK(succeed(w, resumed) == TK_OK);
  CHECK(task_state(core, id) == "complete");
  sql db(pg_base_url());
  CHECK(db.value("SELECT version FROM " + schema + ".tk_schema") == "4");
}

TEST_CASE("a version 2 schema moves to step ids derived from the task: waits answer the tokens "
          "given out before, claims made before are fenced off"
          * doctest::timeout(60)) {
  const auto url = fresh_pg_url();
  const auto schema = schema_of(url);
  manual_clock clock;
  std::int64_t waits = 0, runs1 = 0, runs2 = 0;
  claimed_step waiting, running1;
  {
    auto core = open_core(url);
    use_clock(core, clock);
    register_pipeline(core, pipeline_json("test", "flow", {{"a"}, {"b", {"a"}}}));
    waits = create_task(core);
    runs1 = create_task(core);
    runs2 = create_task(core);
    worker_handle w(core, "before", 1000);
    waiting = poll_one(w);
    running1 = poll_one(w);
    const auto running2 = poll_one(w);
    REQUIRE(waiting.task_id == waits);
    REQUIRE(running1.task_id == runs1);
    REQUIRE(running2.task_id == runs2);
    REQUIRE(running1.fencing_token == running2.fencing_token);
    REQUIRE(wait_for(w, waiting, "approval", 60000) == TK_OK);
  }
  // Version 2 gave ids from a sequence. Here the two running steps get each
  // other's version-3 ids, so an old id names the other step after the
  // migration, under the same claim number.
  const auto v3_id = [](std::int64_t task, std::int64_t idx) { return task * 1048576 + idx; };
  downgrade_to_v2(schema, [&](std::int64_t task, std::int64_t idx) {
    if (idx == 0 && task == runs1)
      return v3_id(runs2, 0);
    if (idx == 0 && task == runs2)
      return v3_id(runs1, 0);
    return task * 10 + idx;
  });
  // What a worker of version 2 holds: the token of the wait and a claim,
  // under their old ids.
  sql db(pg_base_url());
  tasker::core::wait_key key;
  REQUIRE(tasker::core::wait_key::from_hex(
      db.value("SELECT value FROM " + schema + ".tk_meta WHERE key = 'wait_secret'"), key));
  const auto old_token = tasker::core::make_wait_token(key, waits * 10, waiting.fencing_token);
  claimed_step stale = running1;
  stale.step_id = v3_id(runs2, 0);

  auto core = open_core(url);  // migrates to version 3
  use_clock(core, clock);
  CHECK(db.value("SELECT version FROM " + schema + ".tk_schema") == "4");
  CHECK(db.value("SELECT count(*) FROM " + schema + ".tk_steps WHERE id <> task_id * 1048576 + idx")
        == "0");
  CHECK(db.value("SELECT count(*) FROM " + schema + ".tk_step_alias") == "3");
  worker_handle w(core, "after", 1000);
  // The old claim is refused although its id now names the other running
  // step, claimed under the same number: the migration moved the numbers.
  CHECK(succeed(w, stale) == TK_STALE);
  CHECK(step_status(task_status(core, runs2), "a").at("state") == "running");
  tk_error err{};
  REQUIRE(signal(core, old_token, "{\"ok\":true}", err) == TK_OK);
  auto resumed = poll_one(w);
  CHECK(resumed.task_id == waits);
  CHECK(resumed.step_id == v3_id(waits, 0));
  CHECK(resumed.signal_payload == json{{"ok", true}});
  CHECK(signal(core, old_token, "{}", err) == TK_CONFLICT);  // answered already
  CHECK(succeed(w, resumed) == TK_OK);
  auto b = poll_one(w);
  CHECK(b.step_id == v3_id(waits, 1));
  CHECK(succeed(w, b) == TK_OK);
  CHECK(task_state(core, waits) == "complete");
  // The running steps' leases run out; they run again under their new ids.
  clock.advance(1001);
  for (int k = 0; k < 4; ++k) {
    auto s = poll_one(w);
    CHECK((s.task_id == runs1 || s.task_id == runs2));
    CHECK(s.step_id == v3_id(s.task_id, s.step_name == "a" ? 0 : 1));
    if (s.step_name == "a")
      CHECK(s.attempt == 2);
    CHECK(succeed(w, s) == TK_OK);
  }
  CHECK(task_state(core, runs1) == "complete");
  CHECK(task_state(core, runs2) == "complete");
  // A new task's steps lie above every id given out before.
  const auto fresh = create_task(core);
  auto first = poll_one(w);
  CHECK(first.task_id == fresh);
  CHECK(first.step_id == v3_id(fresh, 0));
  CHECK(std::stoll(db.value("SELECT max(id) FROM " + schema + ".tk_steps WHERE task_id <> "
                            + std::to_string(fresh)))
        < first.step_id);
}
