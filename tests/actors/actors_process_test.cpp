// The process actor with real children: exit codes, pipes both ways,
// timeouts (SIGTERM, then SIGKILL), output caps, cancellation, environment
// and working directory, many children at once, and nothing left behind.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tasker/actors/process_actor.hpp>
#include <tasker/test/latch.hpp>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace actors = tasker::actors;
using tasker::process_errc;
using tasker::process_request;
using tasker::process_result;

namespace {

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  actors::process_actor procs;

  fixture()
    : sys{cfg.set("scheduler.max-threads", 2).set("work-stealing.moderate-poll-attempts", 0)},
      procs{actors::spawn_process_actor(sys)} {}

  ~fixture() { caf::anon_send_exit(procs, caf::exit_reason::user_shutdown); }

  process_result run(process_request req) {
    process_result out;
    bool answered = false;
    caf::scoped_actor self{sys};
    self->request(procs, 60s, tasker::run_atom_v, std::move(req))
        .receive(
            [&](process_result& r) {
              out = std::move(r);
              answered = true;
            },
            [&](caf::error& e) { FAIL("run failed: " << sys.render(e)); });
    REQUIRE(answered);
    return out;
  }

  process_result run(std::vector<std::string> argv) {
    process_request req;
    req.argv = std::move(argv);
    return run(std::move(req));
  }
};

/// True when this process has no child left (running or zombie).
bool no_children_left() {
  int status = 0;
  return ::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD;
}

std::int64_t ms(std::int64_t us) {
  return us / 1000;
}

}  // namespace

TEST_CASE_FIXTURE(fixture, "true and false exit with 0 and 1, with rusage" * doctest::timeout(60)) {
  auto t = run({"/bin/true"});
  CHECK(t.error == process_errc::none);
  CHECK(t.exited);
  CHECK(t.exit_code == 0);
  CHECK(t.ok());
  CHECK(t.term_signal == 0);
  CHECK_FALSE(t.timed_out);
  CHECK(t.wall_time_us > 0);
  CHECK(t.max_rss_kb > 0);
  CHECK(t.user_time_us + t.system_time_us >= 0);

  auto f = run({"/bin/false"});
  CHECK(f.exited);
  CHECK(f.exit_code == 1);
  CHECK_FALSE(f.ok());

  // A bare name is looked up in the default PATH.
  CHECK(run({"true"}).ok());
  CHECK(no_children_left());
}

TEST_CASE_FIXTURE(fixture, "stdin bytes come back through cat, and stdin is /dev/null otherwise"
                               * doctest::timeout(60)) {
  process_request req;
  req.argv = {"/bin/cat"};
  req.stdin_data = "hello\nworld\n";
  auto r = run(req);
  CHECK(r.ok());
  CHECK(r.stdout_data == "hello\nworld\n");
  CHECK(r.stderr_data.empty());

  // Larger than any pipe buffer, in both directions at once.
  req.stdin_data.assign(3 << 20, 'x');
  req.max_stdout = 4 << 20;
  r = run(req);
  CHECK(r.ok());
  CHECK(r.stdout_data.size() == (3u << 20));
  CHECK_FALSE(r.stdout_truncated);

  CHECK(run({"/bin/cat"}).stdout_data.empty());
}

TEST_CASE_FIXTURE(fixture, "a missing program is a spawn_failed error, and the actor goes on"
                               * doctest::timeout(60)) {
  auto r = run({"/no/such/program", "arg"});
  CHECK(r.error == process_errc::spawn_failed);
  CHECK(r.error_message.find("/no/such/program") != std::string::npos);
  CHECK_FALSE(r.exited);

  r = run({"no-such-program-anywhere"});
  CHECK(r.error == process_errc::spawn_failed);
  CHECK(r.error_message.find("no-such-program-anywhere") != std::string::npos);

  process_request bad_cwd;
  bad_cwd.argv = {"/bin/true"};
  bad_cwd.cwd = "/no/such/dir";
  r = run(bad_cwd);
  CHECK(r.error == process_errc::spawn_failed);
  CHECK(r.error_message.find("/no/such/dir") != std::string::npos);

  CHECK(run(std::vector<std::string>{}).error == process_errc::invalid_request);
  process_request bad_env;
  bad_env.argv = {"/bin/true"};
  bad_env.env = {"NOEQUALS"};
  CHECK(run(bad_env).error == process_errc::invalid_request);

  CHECK(run({"/bin/true"}).ok());
  CHECK(no_children_left());
}

TEST_CASE_FIXTURE(fixture, "a timeout sends SIGTERM to the process group" * doctest::timeout(60)) {
  process_request req;
  req.argv = {"/bin/sleep", "30"};
  req.timeout_ms = 200;
  req.kill_grace_ms = 5000;
  auto r = run(req);
  CHECK(r.timed_out);
  CHECK_FALSE(r.exited);
  CHECK(r.term_signal == SIGTERM);
  CHECK(ms(r.wall_time_us) >= 200);
  CHECK(ms(r.wall_time_us) < 5000);  // SIGTERM was enough: no wait for the grace period
  CHECK(no_children_left());
}

TEST_CASE_FIXTURE(fixture, "a process that ignores SIGTERM is killed after the grace period"
                               * doctest::timeout(60)) {
  // sh only as the child under test: it and its sleep ignore SIGTERM.
  process_request req;
  req.argv = {"/bin/sh", "-c", "trap '' TERM; sleep 30; echo never"};
  req.timeout_ms = 200;
  req.kill_grace_ms = 300;
  auto r = run(req);
  CHECK(r.timed_out);
  CHECK(r.term_signal == SIGKILL);
  CHECK(r.stdout_data.empty());
  CHECK(ms(r.wall_time_us) >= 500);
  CHECK(ms(r.wall_time_us) < 10000);
  CHECK(no_children_left());
}

TEST_CASE_FIXTURE(fixture, "output over the cap is cut and flagged, and the process finishes"
                               * doctest::timeout(60)) {
  process_request req;
  req.argv = {"/usr/bin/head", "-c", "5000000", "/dev/zero"};
  req.max_stdout = 1000;
  auto r = run(req);
  CHECK(r.ok());  // kept draining: head never blocked on a full pipe
  CHECK(r.stdout_data.size() == 1000);
  CHECK(r.stdout_truncated);
  CHECK_FALSE(r.stderr_truncated);

  req.argv = {"/bin/sh", "-c", "head -c 5000 /dev/zero >&2; echo done"};
  req.max_stderr = 100;
  r = run(req);
  CHECK(r.ok());
  CHECK(r.stderr_data.size() == 100);
  CHECK(r.stderr_truncated);
  CHECK(r.stdout_data == "done\n");
  CHECK_FALSE(r.stdout_truncated);
}

TEST_CASE_FIXTURE(fixture, "a run is cancelled by its request id" * doctest::timeout(60)) {
  caf::scoped_actor self{sys};
  process_request req;
  req.id = 42;
  req.argv = {"/bin/sleep", "30"};
  req.timeout_ms = 0;  // none: only the cancel ends it
  // Both from the same sender, so the run arrives before the cancel.
  self->send(procs, tasker::run_atom_v, req);
  self->send(procs, tasker::cancel_atom_v, std::uint64_t{42});
  process_result result;
  bool got_result = false, cancel_found = false, late = false;
  int answers = 0;
  while (answers < 2 && !late)
    self->receive(
        [&](process_result& r) {
          result = std::move(r);
          got_result = true;
          ++answers;
        },
        [&](bool found) {
          cancel_found = found;
          ++answers;
        },
        caf::after(30s) >> [&] { late = true; });
  REQUIRE(got_result);
  CHECK(cancel_found);
  CHECK(result.id == 42);
  CHECK(result.cancelled);
  CHECK_FALSE(result.timed_out);
  CHECK(result.term_signal == SIGTERM);
  CHECK(ms(result.wall_time_us) < 10000);

  // Unknown (or finished) ids: nothing to cancel.
  bool found = true;
  self->request(procs, 10s, tasker::cancel_atom_v, std::uint64_t{42})
      .receive([&](bool b) { found = b; }, [&](caf::error&) {});
  CHECK_FALSE(found);
  CHECK(no_children_left());
}

TEST_CASE_FIXTURE(fixture, "a second run with an id in flight is refused" * doctest::timeout(60)) {
  caf::scoped_actor self{sys};
  process_request req;
  req.id = 7;
  req.argv = {"/bin/sleep", "30"};
  self->send(procs, tasker::run_atom_v, req);
  // A round trip from the same sender: the first run is registered now.
  self->request(procs, 10s, tasker::cancel_atom_v, std::uint64_t{999})
      .receive([](bool) {}, [](caf::error&) {});
  auto dup = run(req);
  CHECK(dup.error == process_errc::invalid_request);
  CHECK(dup.error_message.find("7") != std::string::npos);
  self->send(procs, tasker::cancel_atom_v, std::uint64_t{7});
  bool ended = false;
  self->receive([&](process_result& r) { ended = r.cancelled; }, caf::after(30s) >> [] {});
  CHECK(ended);
}

TEST_CASE_FIXTURE(fixture, "the environment is exactly the one given, and cwd is honoured"
                               * doctest::timeout(60)) {
  CHECK(run({"/usr/bin/env"}).stdout_data.empty());  // empty by default

  process_request req;
  req.argv = {"/usr/bin/env"};
  req.env = {"ALPHA=1", "BETA=two words"};
  auto r = run(req);
  CHECK(r.ok());
  CHECK(r.stdout_data == "ALPHA=1\nBETA=two words\n");

  const auto dir = fs::canonical(fs::temp_directory_path());
  req = {};
  req.argv = {"/bin/pwd"};
  req.cwd = dir.string();
  r = run(req);
  CHECK(r.ok());
  CHECK(r.stdout_data == dir.string() + "\n");

  // The PATH of the given environment finds bare names.
  req = {};
  req.argv = {"env"};
  req.env = {"PATH=/usr/bin", "X=y"};
  r = run(req);
  CHECK(r.ok());
  CHECK(r.stdout_data == "PATH=/usr/bin\nX=y\n");
}

TEST_CASE_FIXTURE(fixture, "the child does not inherit the worker's blocked signals"
                               * doctest::timeout(60)) {
  // Like runtime/worker, block SIGINT and SIGTERM in this thread first.
  sigset_t set, saved;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &saved);
  process_request req;
  req.argv = {"/bin/grep", "^SigBlk", "/proc/self/status"};
  auto r = run(req);
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  CHECK(r.ok());
  CHECK(r.stdout_data == "SigBlk:\t0000000000000000\n");
}

TEST_CASE_FIXTURE(fixture, "fifty children at once are all collected" * doctest::timeout(90)) {
  caf::scoped_actor self{sys};
  const int n = 50;
  for (int i = 0; i < n; ++i) {
    process_request req;
    req.id = static_cast<std::uint64_t>(i + 1);
    req.argv = {"/bin/sh", "-c", "sleep 0.2; echo $0", std::to_string(i)};
    self->send(procs, tasker::run_atom_v, req);
  }
  std::map<std::uint64_t, process_result> results;
  bool late = false;
  while (static_cast<int>(results.size()) < n && !late)
    self->receive([&](process_result& r) { results.emplace(r.id, std::move(r)); },
                  caf::after(60s) >> [&] { late = true; });
  REQUIRE(static_cast<int>(results.size()) == n);
  for (const auto& [id, r] : results) {
    CAPTURE(id);
    CHECK(r.ok());
    CHECK(r.stdout_data == std::to_string(id - 1) + "\n");
  }
  CHECK(no_children_left());
}

TEST_CASE_FIXTURE(fixture, "stopping the actor answers runs in flight and kills their children"
                               * doctest::timeout(60)) {
  caf::scoped_actor self{sys};
  process_request req;
  req.argv = {"/bin/sleep", "30"};
  self->send(procs, tasker::run_atom_v, req);
  self->monitor(procs);
  // A round trip, so the run is surely spawned before the exit message.
  self->request(procs, 10s, tasker::cancel_atom_v, std::uint64_t{999})
      .receive([](bool) {}, [](caf::error&) {});
  caf::anon_send_exit(procs, caf::exit_reason::user_shutdown);
  process_result result;
  bool down = false, late = false;
  while (!down && !late)
    self->receive([&](process_result& r) { result = std::move(r); },
                  [&](caf::down_msg&) { down = true; }, caf::after(30s) >> [&] { late = true; });
  CHECK(down);
  CHECK(result.error == process_errc::shut_down);
  // The runner's destructor (on the actor's exit) killed and reaped the child.
  CHECK(no_children_left());
}

TEST_CASE_FIXTURE(fixture,
                  "process_client runs and waits with a bounded wait" * doctest::timeout(60)) {
  actors::process_client client{sys, procs, 2s};
  process_request req;
  req.argv = {"/bin/echo", "client"};
  auto r = client.run(req);
  CHECK(r.ok());
  CHECK(r.stdout_data == "client\n");
  CHECK(r.id != 0);  // the client named it, so it could cancel it
  CHECK_FALSE(client.cancel(r.id));
}

TEST_CASE_FIXTURE(fixture, "process_client calls that block every pool thread still get answers"
                               * doctest::timeout(60)) {
  // Function handlers call process_client on CAF's pool and block their
  // thread until the reply. With as many of them as pool threads (2 here),
  // the process actor must still run: it is detached, not on the pool.
  actors::process_client client{sys, procs, 2s};
  std::atomic<int> ok{0};
  std::vector<caf::actor> callers;
  tasker::test::latch answered{4};
  for (int i = 0; i < 4; ++i)
    callers.push_back(sys.spawn(
        [&client, &ok, &answered](caf::event_based_actor*, int) -> caf::behavior {
          process_request req;
          req.argv = {"/bin/sleep", "0.2"};
          req.timeout_ms = 10000;
          if (client.run(req).ok())
            ++ok;
          answered.count_down();
          return {};
        },
        i));
  CHECK(answered.wait_for(20s));
  CHECK(ok.load() == 4);
}
