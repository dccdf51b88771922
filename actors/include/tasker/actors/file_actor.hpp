// The file actor: reads files as shared read-only mmap views (no copy),
// replaces files atomically (temp file + fsync + rename), and keeps every
// path inside the configured roots. Opt-in: spawn it with spawn_file_actor()
// when handlers need it.
//
//   auto files = tasker::actors::spawn_file_actor(w.system(), {{"/srv/data"}});
//   // in an actor handler:
//   self->request(files, 5s, tasker::read_atom_v, "in/orders.csv")
//       .then([](tasker::file_read_result& r) { /* r.error or r.view */ });
//   // in a function handler (blocks its pool thread for one short request):
//   tasker::actors::file_client fc{sys, files};
//   auto r = fc.read("in/orders.csv");
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <tasker/messages/messages.hpp>

namespace tasker::actors {

/// The file actor's protocol: read a path; replace a path's content.
using file_actor = caf::typed_actor<
    caf::replies_to<read_atom, std::string>::with<file_read_result>,
    caf::replies_to<write_atom, std::string, std::string>::with<file_write_result>>;

struct file_actor_config {
  /// Directories every path must resolve into (after following symlinks).
  /// A relative path starts at roots[0]; an absolute one must lie in a root.
  std::vector<std::filesystem::path> roots;
  std::uint64_t max_read_bytes = std::uint64_t{1} << 30;    ///< larger files: too_large
  std::uint64_t max_write_bytes = std::uint64_t{64} << 20;  ///< larger writes: too_large
  /// How long a read of a pipe (FIFO) or device waits for its end of data.
  std::chrono::milliseconds pipe_timeout{30000};
  /// Detached actors (threads) serving requests; more than one sit behind a
  /// round-robin actor_pool, so one slow fsync does not hold up every read.
  std::size_t threads = 1;
  /// fsync the new file and its directory on a write. Without it a write is
  /// still atomic for readers, but may not survive a power loss.
  bool sync = true;
};

/// The file operations behind the actor, usable without one. Thread-safe (the
/// actor's threads share one). Paths are checked lexically (no `..`, inside
/// a root), then resolved (realpath: a symlink must not lead out of the
/// roots), then the opened file descriptor itself is checked again, so a
/// symlink swapped in between cannot escape either.
class file_service {
public:
  /// Throws std::invalid_argument when there is no root, or a root is not an
  /// existing directory.
  explicit file_service(file_actor_config config);
  ~file_service();
  file_service(const file_service&) = delete;
  file_service& operator=(const file_service&) = delete;

  /// The file's bytes as a shared view: an mmap for regular files (a second
  /// read of an unchanged file shares the first one's mapping), a buffer for
  /// pipes, /proc files and empty files.
  file_read_result read(const std::string& path) const;
  /// Replaces the file at `path` (its directory must exist) by a temp file in
  /// the same directory, written, fsynced and renamed over it; readers see
  /// the old or the new content, never a mix. A symlink at `path` is replaced,
  /// not followed. An existing file keeps its permission bits.
  file_write_result write(const std::string& path, std::string_view data) const;

  /// The roots as resolved at construction.
  const std::vector<std::string>& roots() const;
  const file_actor_config& config() const;

  /// How an errno of a failed system call is reported.
  static file_errc classify(int error_number);

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

/// The state of one file actor thread: the shared service.
struct file_state {
  static inline const char* name = "tasker.file";
  std::shared_ptr<const file_service> service;
};

/// The behavior of one file actor thread. Spawn it detached (it blocks on
/// disk I/O); spawn_file_actor() does.
file_actor::behavior_type file_worker(file_actor::stateful_pointer<file_state> self,
                                      std::shared_ptr<const file_service> service);

/// Spawns the file actor: `config.threads` detached actors, behind a
/// round-robin pool when more than one. It stops on an exit message
/// (caf::anon_send_exit) or when its last handle is gone. Throws
/// std::invalid_argument for a bad configuration (see file_service).
file_actor spawn_file_actor(caf::actor_system& sys, file_actor_config config);

/// A blocking client of the file actor for function handlers and non-actor
/// code. Each call is one request with a timeout, so it never blocks its
/// thread for longer than that; a timeout or a dead actor comes back as a
/// file_error (timed_out / io_error). Inside an actor prefer
/// request(...).then(...), which blocks nothing.
class file_client {
public:
  file_client(caf::actor_system& sys, file_actor actor,
              std::chrono::milliseconds timeout = std::chrono::milliseconds{60000});

  file_read_result read(const std::string& path) const;
  file_write_result write(const std::string& path, std::string data) const;

private:
  caf::actor_system* sys_;
  file_actor actor_;
  std::chrono::milliseconds timeout_;
};

}  // namespace tasker::actors
