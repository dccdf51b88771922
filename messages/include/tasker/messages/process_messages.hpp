// The process actor's messages: what to run, and how it ended.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

namespace tasker {

/// A program to run: argv only (never a shell), an explicit environment and
/// working directory, optional stdin bytes, a timeout and output caps.
struct process_request {
  /// Names this run for cancel_atom; 0: the run cannot be cancelled. Two runs
  /// in flight at once may not share a non-zero id.
  std::uint64_t id = 0;
  /// argv[0] is the program: a path (absolute, or relative to `cwd`), or a
  /// bare name looked up in the PATH of `env` (or /usr/local/bin:/usr/bin:/bin
  /// when `env` has none). No shell ever interprets anything.
  std::vector<std::string> argv;
  /// The child's whole environment, "NAME=value" each; empty: none at all.
  std::vector<std::string> env;
  std::string cwd;         ///< the child's working directory; empty: the worker's
  std::string stdin_data;  ///< written to the child's stdin, which is then closed
  /// Since the spawn; then SIGTERM to the process group, and SIGKILL after
  /// `kill_grace_ms`. 0: no timeout.
  std::int64_t timeout_ms = 30000;
  std::int64_t kill_grace_ms = 2000;
  std::uint64_t max_stdout = 1 << 20;  ///< bytes kept; the rest is read and dropped
  std::uint64_t max_stderr = 1 << 20;  ///< bytes kept; the rest is read and dropped
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, process_request& x) {
  return f(caf::meta::type_name("tasker::process_request"), x.id, x.argv, x.env, x.cwd,
           x.stdin_data, x.timeout_ms, x.kill_grace_ms, x.max_stdout, x.max_stderr);
}

/// Why a run produced no process (or lost it).
enum class process_errc : std::uint8_t {
  none,             ///< the process ran; see exit_code / term_signal
  invalid_request,  ///< empty argv, a NUL byte, an env entry without '=', a duplicate id
  spawn_failed,     ///< posix_spawn failed: no such program, not executable, bad cwd…
  io_error,         ///< pipes or the I/O thread failed (the message says how)
  shut_down,        ///< the process actor stopped before the run ended
};

/// The name of a process_errc, e.g. "spawn_failed".
inline const char* to_string(process_errc code) {
  switch (code) {
    case process_errc::none: return "none";
    case process_errc::invalid_request: return "invalid_request";
    case process_errc::spawn_failed: return "spawn_failed";
    case process_errc::io_error: return "io_error";
    case process_errc::shut_down: return "shut_down";
  }
  return "unknown";
}

/// How a run ended.
struct process_result {
  std::uint64_t id = 0;  ///< the request's id
  process_errc error = process_errc::none;
  std::string error_message;  ///< set when error != none
  bool exited = false;        ///< the child called exit: exit_code is valid
  std::int32_t exit_code = -1;
  std::int32_t term_signal = 0;  ///< the signal that ended the child (exited == false)
  bool timed_out = false;        ///< the timeout passed and the group was terminated
  bool cancelled = false;        ///< cancelled by message, and terminated like a timeout
  std::string stdout_data;       ///< the first max_stdout bytes
  std::string stderr_data;       ///< the first max_stderr bytes
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  std::int64_t wall_time_us = 0;    ///< spawn to reaped
  std::int64_t user_time_us = 0;    ///< rusage of the child (and its waited-for children)
  std::int64_t system_time_us = 0;  ///< rusage
  std::int64_t max_rss_kb = 0;      ///< rusage: peak resident set

  /// True when the process ran and exited with status 0.
  bool ok() const { return error == process_errc::none && exited && exit_code == 0; }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, process_result& x) {
  return f(caf::meta::type_name("tasker::process_result"), x.id, x.error, x.error_message, x.exited,
           x.exit_code, x.term_signal, x.timed_out, x.cancelled, x.stdout_data, x.stderr_data,
           x.stdout_truncated, x.stderr_truncated, x.wall_time_us, x.user_time_us, x.system_time_us,
           x.max_rss_kb);
}

}  // namespace tasker
