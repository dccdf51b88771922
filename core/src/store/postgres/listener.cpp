#include "store/postgres/listener.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "abi/error.hpp"
#include "store/encodings.hpp"
#include "store/postgres/connection.hpp"

namespace tasker::core {

pg_listener::pg_listener(std::string conninfo, std::string schema, const std::atomic<int>& own_pid,
                         std::function<void(const effects&)> fn,
                         std::function<bool(std::string_view)> wanted)
  : conninfo_(std::move(conninfo)), schema_(std::move(schema)), own_pid_(own_pid),
    fn_(std::move(fn)), wanted_(std::move(wanted)) {
  if (::pipe(stop_pipe_) != 0)
    fail(TK_STORE_ERROR, "postgresql: cannot create the listener's stop pipe");
  ::fcntl(stop_pipe_[0], F_SETFL, ::fcntl(stop_pipe_[0], F_GETFL) | O_NONBLOCK);
  thread_ = std::thread([this] { run(); });
}

void pg_listener::interest(bool ready, bool done) {
  const bool more = (ready && !interest_ready_.load()) || (done && !interest_done_.load());
  set(interest_ready_, ready);
  set(interest_done_, done);
  if (!more || std::this_thread::get_id() == thread_.get_id())
    return;  // (from a callback on the listening thread itself: it cannot wait for itself)
  std::unique_lock<std::mutex> g{mu_};
  const auto ticket = poked_;
  cv_.wait_for(g, std::chrono::seconds(5), [&] { return reconciled_ >= ticket; });
}

pg_listener::~pg_listener() {
  stopping_.store(true);
  char c = 1;
  [[maybe_unused]] auto n = ::write(stop_pipe_[1], &c, 1);
  thread_.join();
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
}

void pg_listener::set(std::atomic<bool>& flag, bool yes) {
  if (flag.exchange(yes) == yes)
    return;
  {
    std::lock_guard<std::mutex> g{mu_};
    ++poked_;
  }
  char c = 2;
  [[maybe_unused]] auto n = ::write(stop_pipe_[1], &c, 1);
}

bool pg_listener::wait_stop(int fd, int ms) {
  pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {fd, POLLIN, 0}};
  ::poll(fds, fd >= 0 ? 2 : 1, ms);
  char buf[64];
  while (::read(stop_pipe_[0], buf, sizeof buf) > 0) {
  }
  return stopping_.load();
}

bool pg_listener::exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  return ok;
}

void pg_listener::run() {
  int backoff_ms = 50;
  while (!stopping_.load()) {
    // No connection until the core has a callback to serve: a core that
    // only creates tasks or reads their state never listens.
    if (!want_ready() && !interest_done_.load()) {
      wait_stop(-1, -1);
      continue;
    }
    PGconn* c = PQconnectdb(conninfo_.c_str());
    bool listening = PQstatus(c) == CONNECTION_OK;
    if (listening)
      PQsetNoticeProcessor(c, &ignore_notice, nullptr);
    const std::string ready = "\"" + schema_ + ".ready\"", done = "\"" + schema_ + ".done\"";
    bool ready_on = false, done_on = false;
    // (Un)listens as wanted; false when the connection is lost.
    auto reconcile = [&] {
      std::uint64_t ticket = 0;
      {
        std::lock_guard<std::mutex> g{mu_};
        ticket = poked_;
      }
      const bool want_r = want_ready(), want_d = interest_done_.load();
      if (want_d != done_on) {
        if (!exec(c, (want_d ? "LISTEN " : "UNLISTEN ") + done))
          return false;
        done_on = want_d;
      }
      if (want_r != ready_on) {
        if (!exec(c, (want_r ? "LISTEN " : "UNLISTEN ") + ready))
          return false;
        ready_on = want_r;
        if (want_r) {  // what was notified while not listening is lost: look
          effects fx;
          fx.work_ready = true;
          fn_(fx);
        }
      }
      {
        std::lock_guard<std::mutex> g{mu_};
        reconciled_ = std::max(reconciled_, ticket);
      }
      cv_.notify_all();
      return true;
    };
    if (listening)
      listening = reconcile();
    if (!listening) {
      PQfinish(c);
      if (wait_stop(-1, backoff_ms))
        return;
      backoff_ms = std::min(backoff_ms * 2, 2000);
      continue;
    }
    backoff_ms = 50;
    while (!stopping_.load()) {
      if (wait_stop(PQsocket(c), -1))
        break;
      if (!reconcile())
        break;  // connection lost: reconnect
      if (PQconsumeInput(c) == 0)
        break;  // connection lost: reconnect
      effects got;
      while (PGnotify* n = PQnotifies(c)) {
        if (n->be_pid != own_pid_.load(std::memory_order_relaxed))
          parse(n->relname, n->extra, got);
        PQfreemem(n);
      }
      if (got.work_ready || !got.finished.empty())
        fn_(got);
    }
    PQfinish(c);
  }
}

void pg_listener::parse(std::string_view channel, std::string_view payload, effects& out) {
  if (channel.size() > 5 && channel.substr(channel.size() - 5) == "ready") {
    // The payload names the namespace ("": unknown, so any).
    if (payload.empty() || wanted_(payload))
      out.work_ready = true;
    return;
  }
  parse_finished(payload, out);  // store/encodings.hpp
}

}  // namespace tasker::core
