#include <tasker/actors/detail/process_runner.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tasker/actors/detail/unique_fd.hpp>

namespace tasker::actors::detail {

namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto never = clock_type::time_point::max();

/// What an epoll event is about: the low two bits of its data.
enum channel : std::uint64_t {
  exit_channel = 0,
  stdin_channel = 1,
  stdout_channel = 2,
  stderr_channel = 3
};
constexpr std::uint64_t wake_tag = std::numeric_limits<std::uint64_t>::max();

/// Without pidfd_open (Linux < 5.3, or a seccomp filter), exits are found by
/// asking waitid(WNOWAIT) this often.
constexpr milliseconds exit_poll_interval{10};

/// Bytes read from one pipe per wake-up, so one chatty child cannot starve
/// the others (epoll is level-triggered: the rest comes next round).
constexpr std::size_t read_budget = 256 * 1024;

std::string errno_text(int e) {
  return std::system_category().message(e);
}

std::int64_t micros(const timeval& tv) {
  return static_cast<std::int64_t>(tv.tv_sec) * 1'000'000 + tv.tv_usec;
}

/// One run, from the request to its reaped child.
struct job {
  std::uint64_t key = 0;
  process_request request;
  process_result result;
  pid_t pid = -1;
  unique_fd exit_fd;  ///< pidfd (readable once the child exited); none: polled
  unique_fd in, out, err;
  std::size_t in_written = 0;
  clock_type::time_point started{};
  clock_type::time_point deadline = never;     ///< timeout; then the end of the SIGTERM grace
  bool terminating = false;                    ///< SIGTERM sent
  bool killed = false;                         ///< SIGKILL sent
  bool exited = false;                         ///< the child is a zombie (not reaped yet)
  clock_type::time_point drain_until = never;  ///< after the exit: how long pipes may stay open
};

/// Makes a pipe whose parent end is non-blocking; both ends close on exec.
bool make_pipe(unique_fd& parent_end, unique_fd& child_end, bool parent_reads) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return false;
  parent_end.reset(parent_reads ? fds[0] : fds[1]);
  child_end.reset(parent_reads ? fds[1] : fds[0]);
  ::fcntl(parent_end.get(), F_SETFL, ::fcntl(parent_end.get(), F_GETFL) | O_NONBLOCK);
  return true;
}

bool has_nul(const std::string& s) {
  return s.find('\0') != std::string::npos;
}

/// Why a request cannot run (empty when it can).
std::string invalid(const process_request& r) {
  if (r.argv.empty() || r.argv[0].empty())
    return "argv is empty: the program to run is argv[0]";
  for (const auto& a : r.argv)
    if (has_nul(a))
      return "an argument contains a NUL byte";
  for (const auto& e : r.env)
    if (has_nul(e) || e.find('=') == std::string::npos || e[0] == '=')
      return "environment entry \"" + e + "\" is not NAME=value";
  if (has_nul(r.cwd))
    return "the working directory contains a NUL byte";
  if (r.timeout_ms < 0 || r.kill_grace_ms < 0)
    return "a negative timeout or grace period";
  return {};
}

/// RAII for the posix_spawn attribute objects.
struct spawn_setup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  spawn_setup() {
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attr);
  }
  ~spawn_setup() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
  }
  spawn_setup(const spawn_setup&) = delete;
  spawn_setup& operator=(const spawn_setup&) = delete;
};

}  // namespace

std::string find_program(const std::string& name, const std::string& path) {
  if (name.find('/') != std::string::npos)
    return name;
  for (std::size_t begin = 0; begin <= path.size();) {
    auto end = path.find(':', begin);
    if (end == std::string::npos)
      end = path.size();
    std::string dir = path.substr(begin, end - begin);
    begin = end + 1;
    auto candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)
        && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return {};
}

struct process_runner::core {
  struct command {
    bool cancel = false;
    std::uint64_t key = 0;
    process_request request;
  };

  // Shared with the actor's threads, under `mutex`.
  std::mutex mutex;
  std::vector<command> inbox;
  bool stop = false;

  // Set at construction, then read-only.
  std::size_t max_running;
  std::string default_path;
  done_fn done;
  unique_fd epoll_fd, wake_fd;

  // The I/O thread's own.
  std::unordered_map<std::uint64_t, std::unique_ptr<job>> running;
  std::deque<std::unique_ptr<job>> waiting;
  std::vector<std::unique_ptr<job>> finished;
  std::vector<char> scratch = std::vector<char>(64 * 1024);
  std::size_t polled_exits = 0;  ///< running jobs without a pidfd

  core(std::size_t max, std::string path, done_fn fn)
    : max_running(std::max<std::size_t>(max, 1)), default_path(std::move(path)),
      done(std::move(fn)) {
    epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_fd)
      throw std::system_error(errno, std::system_category(), "process actor: epoll_create1");
    wake_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd)
      throw std::system_error(errno, std::system_category(), "process actor: eventfd");
    watch(wake_fd.get(), EPOLLIN, wake_tag);
  }

  void post(command c) {
    {
      std::lock_guard<std::mutex> lock{mutex};
      inbox.push_back(std::move(c));
    }
    wake();
  }

  void wake() {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd.get(), &one, sizeof one);
  }

  void watch(int fd, std::uint32_t events, std::uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev);
  }

  /// Stops watching `fd` and closes it.
  void drop(unique_fd& fd) {
    if (fd) {
      ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, fd.get(), nullptr);
      fd.reset();
    }
  }

  static std::uint64_t tag(const job& j, channel c) { return (j.key << 2) | c; }

  // -- the loop ----------------------------------------------------------------

  void run() {
    // Asynchronous signals are for the worker's own threads (runtime/worker
    // sigwaits for SIGINT/SIGTERM); a write to a child that quit must give
    // EPIPE here, not a process-wide SIGPIPE.
    sigset_t all;
    sigfillset(&all);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS})
      sigdelset(&all, sig);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);

    std::vector<epoll_event> events(128);
    for (;;) {
      const int n =
          ::epoll_wait(epoll_fd.get(), events.data(), static_cast<int>(events.size()), wait_ms());
      if (n < 0 && errno != EINTR)
        break;  // not with a valid epoll fd; were it to, shut_down() still kills and reaps
      for (int i = 0; i < n; ++i)
        on_event(events[static_cast<std::size_t>(i)]);
      if (!take_commands())
        break;
      check_time();
      start_waiting();
      deliver_finished();
    }
    shut_down();
  }

  /// Until the earliest deadline (or the next exit poll); -1: none.
  int wait_ms() const {
    auto next = never;
    for (const auto& [key, j] : running) {
      next = std::min(next, j->exited ? j->drain_until : j->deadline);
      (void)key;
    }
    if (!finished.empty())
      return 0;
    auto now = clock_type::now();
    if (polled_exits > 0)
      next = std::min(next, now + exit_poll_interval);
    if (next == never)
      return -1;
    if (next <= now)
      return 0;
    auto ms = std::chrono::duration_cast<milliseconds>(next - now).count() + 1;
    return static_cast<int>(std::min<std::int64_t>(ms, 60'000));
  }

  void on_event(const epoll_event& ev) {
    if (ev.data.u64 == wake_tag) {
      std::uint64_t count = 0;
      (void)!::read(wake_fd.get(), &count, sizeof count);
      return;
    }
    auto it = running.find(ev.data.u64 >> 2);
    if (it == running.end())
      return;
    auto& j = *it->second;
    switch (static_cast<channel>(ev.data.u64 & 3)) {
      case exit_channel: child_exited(j); break;
      case stdin_channel: feed(j); break;
      case stdout_channel:
        drain(j, j.out, j.result.stdout_data, j.request.max_stdout, j.result.stdout_truncated);
        break;
      case stderr_channel:
        drain(j, j.err, j.result.stderr_data, j.request.max_stderr, j.result.stderr_truncated);
        break;
    }
    maybe_finish(j);
  }

  /// Takes submitted runs and cancels; false when the runner stops.
  bool take_commands() {
    std::vector<command> batch;
    {
      std::lock_guard<std::mutex> lock{mutex};
      if (stop)
        return false;
      batch.swap(inbox);
    }
    for (auto& c : batch) {
      if (c.cancel) {
        cancel(c.key);
        continue;
      }
      auto j = std::make_unique<job>();
      j->key = c.key;
      j->result.id = c.request.id;
      j->request = std::move(c.request);
      waiting.push_back(std::move(j));
      // Spawned before the next command: a cancel sent after a run always
      // finds the child started (unless it waits for a free slot).
      start_waiting();
    }
    return true;
  }

  void cancel(std::uint64_t key) {
    if (auto it = running.find(key); it != running.end()) {
      auto& j = *it->second;
      if (!j.exited && !j.terminating) {
        j.result.cancelled = true;
        terminate(j, clock_type::now());
      }
      return;
    }
    auto it = std::find_if(waiting.begin(), waiting.end(), [&](auto& j) { return j->key == key; });
    if (it != waiting.end()) {
      (*it)->result.cancelled = true;
      finished.push_back(std::move(*it));
      waiting.erase(it);
    }
  }

  void start_waiting() {
    while (!waiting.empty() && running.size() < max_running) {
      auto j = std::move(waiting.front());
      waiting.pop_front();
      if (spawn(*j))
        running.emplace(j->key, std::move(j));
      else
        finished.push_back(std::move(j));
    }
  }

  void deliver_finished() {
    // done() may destroy the runner (it can drop the last reference to the
    // actor); the loop then ends at the next take_commands().
    auto batch = std::move(finished);
    finished.clear();
    for (auto& j : batch)
      done(j->key, std::move(j->result));
  }

  // -- spawning ------------------------------------------------------------------

  /// Starts the child; false (with the error in the result) when it cannot.
  bool spawn(job& j) {
    auto& r = j.result;
    j.started = clock_type::now();
    if (auto why = invalid(j.request); !why.empty()) {
      r.error = process_errc::invalid_request;
      r.error_message = why;
      return false;
    }
    auto fail = [&](process_errc code, std::string message) {
      r.error = code;
      r.error_message = std::move(message);
      return false;
    };
    const auto& req = j.request;
    std::string path = default_path;
    for (const auto& e : req.env)
      if (e.compare(0, 5, "PATH=") == 0)
        path = e.substr(5);
    const auto program = find_program(req.argv[0], path);
    if (program.empty())
      return fail(process_errc::spawn_failed,
                  "cannot run \"" + req.argv[0] + "\": no such program in PATH " + path);
    if (!req.cwd.empty()) {
      struct stat st {};
      if (::stat(req.cwd.c_str(), &st) != 0)
        return fail(process_errc::spawn_failed,
                    "working directory \"" + req.cwd + "\": " + errno_text(errno));
      if (!S_ISDIR(st.st_mode))
        return fail(process_errc::spawn_failed,
                    "working directory \"" + req.cwd + "\" is not a directory");
    }

    unique_fd child_in, child_out, child_err;
    if (!make_pipe(j.out, child_out, true) || !make_pipe(j.err, child_err, true)
        || (!req.stdin_data.empty() && !make_pipe(j.in, child_in, false)))
      return fail(process_errc::io_error, "cannot make pipes: " + errno_text(errno));

    spawn_setup s;
    if (child_in)
      ::posix_spawn_file_actions_adddup2(&s.actions, child_in.get(), 0);
    else
      ::posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&s.actions, child_out.get(), 1);
    ::posix_spawn_file_actions_adddup2(&s.actions, child_err.get(), 2);
    if (!req.cwd.empty())
      ::posix_spawn_file_actions_addchdir_np(&s.actions, req.cwd.c_str());
    // Descriptors other threads opened without O_CLOEXEC stay out of the child.
    ::posix_spawn_file_actions_addclosefrom_np(&s.actions, 3);
    // Its own process group (so a timeout reaches its children too), no
    // blocked signals, and default actions (the worker blocks SIGINT/SIGTERM
    // in its threads and may ignore SIGPIPE; a child must not inherit that).
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    ::posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK
                                            | POSIX_SPAWN_SETSIGDEF);
    ::posix_spawnattr_setpgroup(&s.attr, 0);
    ::posix_spawnattr_setsigmask(&s.attr, &none);
    ::posix_spawnattr_setsigdefault(&s.attr, &all);

    std::vector<char*> argv, envp;
    for (const auto& a : req.argv)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : req.env)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    const int rc =
        ::posix_spawn(&j.pid, program.c_str(), &s.actions, &s.attr, argv.data(), envp.data());
    if (rc != 0) {
      j.pid = -1;
      return fail(process_errc::spawn_failed, "cannot run \"" + program + "\": " + errno_text(rc));
    }
    j.exit_fd.reset(static_cast<int>(::syscall(SYS_pidfd_open, j.pid, 0)));
    if (j.exit_fd)
      watch(j.exit_fd.get(), EPOLLIN, tag(j, exit_channel));
    else
      ++polled_exits;
    watch(j.out.get(), EPOLLIN, tag(j, stdout_channel));
    watch(j.err.get(), EPOLLIN, tag(j, stderr_channel));
    if (j.in)
      watch(j.in.get(), EPOLLOUT, tag(j, stdin_channel));
    if (req.timeout_ms > 0)
      j.deadline = j.started + milliseconds{req.timeout_ms};
    return true;
  }

  // -- I/O -----------------------------------------------------------------------

  void feed(job& j) {
    const auto& data = j.request.stdin_data;
    while (j.in_written < data.size()) {
      const auto n = ::write(j.in.get(), data.data() + j.in_written, data.size() - j.in_written);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      if (n < 0) {
        if (errno == EPIPE)
          consume_sigpipe();
        break;  // the child closed its stdin: the rest is not wanted
      }
      j.in_written += static_cast<std::size_t>(n);
    }
    drop(j.in);  // all written (or refused): close, so the child sees EOF
  }

  /// The SIGPIPE of a write to a closed pipe stays pending on this thread
  /// (it is blocked here); take it, so it never reaches anyone.
  static void consume_sigpipe() {
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    timespec zero{0, 0};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) == SIGPIPE) {
    }
  }

  /// Reads what a pipe has; keeps the first `cap` bytes and drops the rest
  /// (still reading, so the child never blocks on a full pipe).
  void drain(job&, unique_fd& fd, std::string& kept, std::uint64_t cap, bool& truncated) {
    std::size_t budget = read_budget;
    while (fd && budget > 0) {
      const auto n = ::read(fd.get(), scratch.data(), scratch.size());
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      if (n <= 0) {
        drop(fd);  // EOF (or an error: nothing more will come)
        return;
      }
      const auto got = static_cast<std::size_t>(n);
      budget -= std::min(budget, got);
      const auto room = cap > kept.size() ? static_cast<std::size_t>(cap - kept.size()) : 0;
      kept.append(scratch.data(), std::min(room, got));
      if (got > room)
        truncated = true;
    }
  }

  // -- exits, timeouts, reaping ----------------------------------------------------

  void child_exited(job& j) {
    if (j.exited)
      return;
    j.exited = true;
    if (j.exit_fd)
      drop(j.exit_fd);
    else
      --polled_exits;
    // Pipes may stay open in descendants that outlived it: they get one
    // grace period to finish, then the group is killed and the pipes closed.
    j.drain_until = clock_type::now() + milliseconds{j.request.kill_grace_ms};
  }

  void terminate(job& j, clock_type::time_point now) {
    j.terminating = true;
    ::kill(-j.pid, SIGTERM);  // the whole group: pid == pgid (POSIX_SPAWN_SETPGROUP, 0)
    ::kill(j.pid, SIGTERM);   // and the child, should it have left its group
    j.deadline = now + milliseconds{j.request.kill_grace_ms};
  }

  void check_time() {
    const auto now = clock_type::now();
    std::vector<job*> done_now;
    for (auto& [key, jp] : running) {
      (void)key;
      auto& j = *jp;
      if (!j.exited && !j.exit_fd && exited_without_pidfd(j))
        child_exited(j);
      if (j.exited) {
        if (now >= j.drain_until) {
          // The child is a zombie (not reaped), so its pid, which is the
          // group id, cannot have been reused: the kill cannot hit a stranger.
          ::kill(-j.pid, SIGKILL);
          drop(j.out);
          drop(j.err);
        }
        if (!j.out && !j.err)
          done_now.push_back(&j);
        continue;
      }
      if (now < j.deadline)
        continue;
      if (!j.terminating) {
        j.result.timed_out = true;
        terminate(j, now);
      } else if (!j.killed) {
        j.killed = true;
        ::kill(-j.pid, SIGKILL);
        ::kill(j.pid, SIGKILL);
        j.deadline = never;  // SIGKILL cannot be ignored: the exit follows
      }
    }
    for (auto* j : done_now)
      finish(*j);
  }

  bool exited_without_pidfd(job& j) {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(j.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0
           && info.si_pid == j.pid;
  }

  void maybe_finish(job& j) {
    if (j.exited && !j.out && !j.err)
      finish(j);
  }

  /// Reaps the (exited) child, fills the result, and moves the job to `finished`.
  void finish(job& j) {
    auto it = running.find(j.key);
    if (it == running.end())
      return;
    auto owned = std::move(it->second);
    running.erase(it);
    drop(owned->in);
    drop(owned->out);
    drop(owned->err);
    drop(owned->exit_fd);
    reap(*owned);
    finished.push_back(std::move(owned));
  }

  void reap(job& j) {
    int status = 0;
    rusage usage{};
    pid_t got;
    do {
      got = ::wait4(j.pid, &status, 0, &usage);
    } while (got < 0 && errno == EINTR);
    auto& r = j.result;
    r.wall_time_us =
        std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - j.started)
            .count();
    if (got != j.pid) {
      r.error = process_errc::io_error;
      r.error_message = "wait4 failed: " + errno_text(errno);
      return;
    }
    if (WIFEXITED(status)) {
      r.exited = true;
      r.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      r.term_signal = WTERMSIG(status);
    }
    r.user_time_us = micros(usage.ru_utime);
    r.system_time_us = micros(usage.ru_stime);
    r.max_rss_kb = usage.ru_maxrss;
  }

  /// The runner is going away: every child still running is killed and
  /// reaped (no zombies left behind); nobody waits for results any more.
  void shut_down() {
    for (auto& [key, j] : running) {
      (void)key;
      ::kill(-j->pid, SIGKILL);
      ::kill(j->pid, SIGKILL);
      int status = 0;
      while (::waitpid(j->pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    running.clear();
    waiting.clear();
    finished.clear();
  }
};

process_runner::process_runner(std::size_t max_running, std::string default_path, done_fn done)
  : core_(std::make_shared<core>(max_running, std::move(default_path), std::move(done))) {
  thread_ = std::thread([c = core_] { c->run(); });
}

process_runner::~process_runner() {
  {
    std::lock_guard<std::mutex> lock{core_->mutex};
    core_->stop = true;
  }
  core_->wake();
  // On the I/O thread itself (done() dropped the actor's last reference) the
  // thread cannot join itself: it finishes on its own, holding the core.
  if (thread_.get_id() == std::this_thread::get_id())
    thread_.detach();
  else
    thread_.join();
}

void process_runner::submit(std::uint64_t key, process_request request) {
  core_->post({false, key, std::move(request)});
}

void process_runner::cancel(std::uint64_t key) {
  core_->post({true, key, {}});
}

}  // namespace tasker::actors::detail
