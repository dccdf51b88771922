#include <tasker/actors/file_actor.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <random>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/actor_pool.hpp>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/spawn_options.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tasker/actors/detail/unique_fd.hpp>

namespace tasker::actors {

namespace {

using detail::unique_fd;

/// A read-only mapping of a whole file, unmapped by the last view that holds it.
struct mapping {
  void* addr = nullptr;
  std::size_t size = 0;
  mapping() = default;
  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;
  ~mapping() {
    if (addr != nullptr)
      ::munmap(addr, size);
  }
};

/// A file's identity while it is mapped: a mapping keeps its inode alive, so
/// the number cannot be reused by another file while the cache can hand the
/// mapping out.
struct inode_key {
  dev_t dev;
  ino_t ino;
  bool operator==(const inode_key& o) const { return dev == o.dev && ino == o.ino; }
};
struct inode_hash {
  std::size_t operator()(const inode_key& k) const {
    return std::hash<std::uint64_t>{}(static_cast<std::uint64_t>(k.ino) * 31
                                      + static_cast<std::uint64_t>(k.dev));
  }
};

std::string in_quotes(const std::string& s) {
  return "\"" + s + "\"";
}

std::string errno_text(int e) {
  return std::system_category().message(e);
}

/// True when `path` (absolute, normal) is `root` or below it.
bool is_under(const std::string& path, const std::string& root) {
  if (root == "/")
    return !path.empty() && path[0] == '/';
  return path.size() >= root.size() && path.compare(0, root.size(), root) == 0
         && (path.size() == root.size() || path[root.size()] == '/');
}

/// An absolute, lexically normal spelling without a trailing slash.
std::string normal(const std::filesystem::path& p) {
  auto s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/')
    s.pop_back();
  return s;
}

/// realpath(3) as a string; empty and errno set on failure.
std::string real_path(const std::string& p) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (r == nullptr)
    return {};
  std::string out{r};
  std::free(r);
  return out;
}

/// A temp file name nobody else would pick: ".tasker-<16 hex>.tmp".
std::string temp_name() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char hex[] = "0123456789abcdef";
  std::string name = ".tasker-";
  auto bits = rng();
  for (int i = 0; i < 16; ++i, bits >>= 4)
    name += hex[bits & 0xf];
  return name + ".tmp";
}

}  // namespace

struct file_service::impl {
  file_actor_config config;
  std::vector<std::string> canonical;  ///< realpath of each root
  std::vector<std::string> spelled;    ///< each root as configured, absolute and normal
  std::string roots_text;              ///< "[/a, /b]", for messages
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<inode_key, std::weak_ptr<const mapping>, inode_hash> cache;
  mutable std::size_t cache_sweep_at = 64;

  file_error outside(const std::string& path, const std::string& why) const {
    return {file_errc::outside_roots,
            "path " + in_quotes(path) + " is outside the allowed roots " + roots_text + ": " + why};
  }

  file_error failed(const char* what, const std::string& path, int e) const {
    return {classify(e),
            std::string("cannot ") + what + " " + in_quotes(path) + ": " + errno_text(e)};
  }

  bool inside(const std::string& real) const {
    return std::any_of(canonical.begin(), canonical.end(),
                       [&](const std::string& root) { return is_under(real, root); });
  }

  /// Refuses empty paths, NUL bytes and `..`; makes `absolute`, which must lie
  /// in a root as spelled (or as resolved).
  file_error check_lexically(const std::string& path, std::string& absolute) const {
    if (path.empty())
      return {file_errc::invalid_path, "an empty path names no file"};
    if (path.find('\0') != std::string::npos)
      return {file_errc::invalid_path, "path " + in_quotes(path) + " contains a NUL byte"};
    for (std::size_t begin = 0; begin <= path.size();) {
      auto end = path.find('/', begin);
      if (end == std::string::npos)
        end = path.size();
      if (path.compare(begin, end - begin, "..") == 0)
        return outside(path, "it contains a \"..\" component");
      begin = end + 1;
    }
    absolute = path[0] == '/' ? normal(path) : normal(std::filesystem::path(spelled[0]) / path);
    for (std::size_t i = 0; i < spelled.size(); ++i)
      if (is_under(absolute, spelled[i]) || is_under(absolute, canonical[i]))
        return {};
    return outside(path, "it is not below any of them");
  }

  /// Follows the symlinks of `absolute` into `real`, which must lie in a root.
  file_error resolve(const std::string& path, const std::string& absolute, std::string& real,
                     const char* what) const {
    real = real_path(absolute);
    if (real.empty())
      return failed(what, path, errno);
    if (!inside(real))
      return outside(path, "it resolves to " + in_quotes(real));
    return {};
  }

  /// Checks the file an open descriptor really refers to (a symlink swapped
  /// in after resolve() would show here). Without /proc there is nothing to
  /// ask, and resolve()'s check stands.
  file_error check_descriptor(const std::string& path, int fd) const {
    char link[PATH_MAX + 1];
    const auto proc = "/proc/self/fd/" + std::to_string(fd);
    const auto n = ::readlink(proc.c_str(), link, PATH_MAX);
    if (n <= 0)
      return {};
    std::string opened{link, static_cast<std::size_t>(n)};
    if (!inside(opened))
      return outside(path,
                     "the file opened is " + in_quotes(opened) + " (a symlink changed under it)");
    return {};
  }

  /// Maps a regular file (or shares the mapping of an earlier read of the
  /// same unchanged inode); false when the file cannot be mapped.
  bool map(int fd, const struct stat& st, file_view& view) const {
    const auto size = static_cast<std::size_t>(st.st_size);
    const inode_key key{st.st_dev, st.st_ino};
    std::lock_guard<std::mutex> lock{cache_mutex};
    if (auto it = cache.find(key); it != cache.end()) {
      // The same inode shows the same page cache: a mapping of the same size
      // shows exactly what a new one would.
      if (auto m = it->second.lock(); m && m->size == size) {
        view = file_view{m, static_cast<const char*>(m->addr), m->size, true};
        return true;
      }
    }
    auto m = std::make_shared<mapping>();
    m->addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->addr == MAP_FAILED) {
      m->addr = nullptr;
      return false;
    }
    m->size = size;
    cache[key] = m;
    if (cache.size() >= cache_sweep_at) {
      for (auto it = cache.begin(); it != cache.end();)
        it = it->second.expired() ? cache.erase(it) : std::next(it);
      cache_sweep_at = std::max<std::size_t>(64, 2 * cache.size());
    }
    view = file_view{m, static_cast<const char*>(m->addr), size, true};
    return true;
  }

  /// Reads to the end into a buffer: /proc files, empty files, pipes and
  /// devices. A pipe waits up to pipe_timeout for its writer to finish.
  file_read_result read_stream(const std::string& path, int fd, bool regular) const {
    file_read_result out;
    auto buffer = std::make_shared<std::string>();
    const auto deadline = std::chrono::steady_clock::now() + config.pipe_timeout;
    char chunk[64 * 1024];
    for (;;) {
      if (!regular) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
        if (ready < 0 && errno == EINTR)
          continue;
        if (ready < 0) {
          out.error = failed("read", path, errno);
          return out;
        }
        if (ready == 0) {
          out.error = {file_errc::timed_out,
                       "reading " + in_quotes(path) + ": no end of data within "
                           + std::to_string(config.pipe_timeout.count()) + " ms"};
          return out;
        }
      }
      const auto n = ::read(fd, chunk, sizeof chunk);
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (n < 0) {
        out.error = failed("read", path, errno);
        return out;
      }
      if (n == 0)
        break;
      if (buffer->size() + static_cast<std::size_t>(n) > config.max_read_bytes) {
        out.error = {file_errc::too_large, in_quotes(path) + " has more than "
                                               + std::to_string(config.max_read_bytes)
                                               + " bytes, the read limit"};
        return out;
      }
      buffer->append(chunk, static_cast<std::size_t>(n));
    }
    const char* data = buffer->data();
    const auto size = buffer->size();
    out.view = file_view{std::move(buffer), data, size, false};
    return out;
  }
};

file_service::file_service(file_actor_config config) : impl_(std::make_unique<impl>()) {
  auto& d = *impl_;
  if (config.roots.empty())
    throw std::invalid_argument("file actor: no root directory configured");
  if (config.threads == 0)
    config.threads = 1;
  for (const auto& root : config.roots) {
    if (root.empty())
      throw std::invalid_argument("file actor: an empty root directory");
    const auto real = real_path(root.string());
    if (real.empty())
      throw std::invalid_argument("file actor: root " + in_quotes(root.string())
                                  + " cannot be resolved: " + errno_text(errno));
    struct stat st {};
    if (::stat(real.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw std::invalid_argument("file actor: root " + in_quotes(root.string())
                                  + " is not a directory");
    d.canonical.push_back(real);
    d.spelled.push_back(normal(std::filesystem::absolute(root)));
    d.roots_text += (d.roots_text.empty() ? "[" : ", ") + real;
  }
  d.roots_text += "]";
  d.config = std::move(config);
}

file_service::~file_service() = default;

const std::vector<std::string>& file_service::roots() const {
  return impl_->canonical;
}

const file_actor_config& file_service::config() const {
  return impl_->config;
}

file_errc file_service::classify(int error_number) {
  switch (error_number) {
    case ENOENT:
    case ENOTDIR: return file_errc::not_found;
    case EACCES:
    case EPERM:
    case EROFS: return file_errc::permission_denied;
    case EISDIR: return file_errc::not_a_file;
    case ENAMETOOLONG: return file_errc::invalid_path;
    case EFBIG: return file_errc::too_large;
    default: return file_errc::io_error;
  }
}

file_read_result file_service::read(const std::string& path) const {
  const auto& d = *impl_;
  file_read_result out;
  std::string absolute, real;
  if ((out.error = d.check_lexically(path, absolute)))
    return out;
  if ((out.error = d.resolve(path, absolute, real, "read")))
    return out;
  // O_NONBLOCK: opening a FIFO must not wait for a writer here (read_stream
  // polls with a timeout); O_NOFOLLOW: `real` has no symlink left, so one
  // appearing now is an attack (ELOOP).
  unique_fd fd{::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW)};
  if (!fd) {
    const int e = errno;
    out.error = e == ELOOP ? d.outside(path, "it turned into a symlink while opened")
                           : d.failed("read", path, e);
    return out;
  }
  if ((out.error = d.check_descriptor(path, fd.get())))
    return out;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    out.error = d.failed("read", path, errno);
    return out;
  }
  if (S_ISDIR(st.st_mode)) {
    out.error = {file_errc::not_a_file, "cannot read " + in_quotes(path) + ": it is a directory"};
    return out;
  }
  const bool regular = S_ISREG(st.st_mode);
  if (regular && st.st_size > 0) {
    if (static_cast<std::uint64_t>(st.st_size) > d.config.max_read_bytes) {
      out.error = {file_errc::too_large, in_quotes(path) + " has " + std::to_string(st.st_size)
                                             + " bytes, over the read limit of "
                                             + std::to_string(d.config.max_read_bytes)};
      return out;
    }
    if (d.map(fd.get(), st, out.view))
      return out;
    // Not mappable (some /proc and /sys files): read it.
  }
  if (regular) {
    // Regular files never block; drop O_NONBLOCK anyway for odd filesystems.
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  }
  return d.read_stream(path, fd.get(), regular);
}

file_write_result file_service::write(const std::string& path, std::string_view data) const {
  const auto& d = *impl_;
  file_write_result out;
  if (data.size() > d.config.max_write_bytes) {
    out.error = {file_errc::too_large, "writing " + std::to_string(data.size()) + " bytes to "
                                           + in_quotes(path) + " is over the write limit of "
                                           + std::to_string(d.config.max_write_bytes)};
    return out;
  }
  std::string absolute, dir_real;
  if ((out.error = d.check_lexically(path, absolute)))
    return out;
  if (path.back() == '/' || path.back() == '.') {
    // "dir/", "dir/." and "." name directories (".." was refused above).
    const auto last = path.substr(path.find_last_of('/') + 1);
    if (last.empty() || last == ".") {
      out.error = {file_errc::invalid_path,
                   "cannot write " + in_quotes(path) + ": it names a directory"};
      return out;
    }
  }
  const std::filesystem::path target{absolute};
  const auto name = target.filename().string();
  if ((out.error = d.resolve(path, target.parent_path().string(), dir_real, "write")))
    return out;
  unique_fd dir{::open(dir_real.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)};
  if (!dir) {
    out.error = d.failed("write", path, errno);
    return out;
  }
  if ((out.error = d.check_descriptor(path, dir.get())))
    return out;

  // An existing file keeps its permission bits; a new one gets 0666 & ~umask.
  struct stat st {};
  bool keep_mode = false;
  if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode)) {
      out.error = {file_errc::not_a_file,
                   "cannot write " + in_quotes(path) + ": it is a directory"};
      return out;
    }
    keep_mode = S_ISREG(st.st_mode);
  } else if (errno != ENOENT) {
    out.error = d.failed("write", path, errno);
    return out;
  }

  std::string temp;
  unique_fd file;
  for (int attempt = 0; attempt < 16 && !file; ++attempt) {
    temp = temp_name();
    file.reset(::openat(dir.get(), temp.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                        keep_mode ? 0600 : 0666));
    if (!file && errno != EEXIST) {
      out.error = d.failed("write", path, errno);
      return out;
    }
  }
  if (!file) {
    out.error = {file_errc::io_error,
                 "cannot write " + in_quotes(path) + ": no free temp file name"};
    return out;
  }
  auto fail = [&](const char* step, int e) {
    ::unlinkat(dir.get(), temp.c_str(), 0);
    out.error = {classify(e),
                 "cannot write " + in_quotes(path) + " (" + step + "): " + errno_text(e)};
    return out;
  };
  if (keep_mode && ::fchmod(file.get(), st.st_mode & 07777) != 0)
    return fail("fchmod", errno);
  for (std::size_t done = 0; done < data.size();) {
    const auto n = ::write(file.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return fail("write", errno);
    done += static_cast<std::size_t>(n);
  }
  if (d.config.sync && ::fdatasync(file.get()) != 0)
    return fail("fdatasync", errno);
  if (::close(file.release()) != 0)
    return fail("close", errno);
  if (::renameat(dir.get(), temp.c_str(), dir.get(), name.c_str()) != 0)
    return fail("rename", errno);
  // The rename itself survives a crash only once the directory is synced.
  if (d.config.sync && ::fsync(dir.get()) != 0) {
    out.error = d.failed("sync the directory of", path, errno);
    return out;
  }
  out.size = data.size();
  return out;
}

file_actor::behavior_type file_worker(file_actor::stateful_pointer<file_state> self,
                                      std::shared_ptr<const file_service> service) {
  self->state.service = std::move(service);
  // Nothing but std::bad_alloc can escape the service; it too becomes a
  // value rather than an exception in CAF's hands.
  return {
      [self](read_atom, const std::string& path) {
        try {
          return self->state.service->read(path);
        } catch (const std::exception& e) {
          file_read_result r;
          r.error = {file_errc::io_error, "cannot read \"" + path + "\": " + e.what()};
          return r;
        }
      },
      [self](write_atom, const std::string& path, const std::string& data) {
        try {
          return self->state.service->write(path, data);
        } catch (const std::exception& e) {
          file_write_result r;
          r.error = {file_errc::io_error, "cannot write \"" + path + "\": " + e.what()};
          return r;
        }
      },
  };
}

// Detached, not on the work-stealing pool: a read may wait on a pipe, a
// write waits for fsync (milliseconds, more on a busy disk), and CAF's pool
// has one thread per core, so one blocked pool thread halves a 2-core
// worker. The threads are few and live as long as the actor (CAF 0.17.6 can
// hang at shutdown with many short-lived detached actors). Reads of regular
// files cost the thread only open+fstat+mmap: the page faults that bring the
// bytes in happen later, in whoever scans the view.
file_actor spawn_file_actor(caf::actor_system& sys, file_actor_config config) {
  const auto threads = std::max<std::size_t>(config.threads, 1);
  auto service = std::make_shared<const file_service>(std::move(config));
  if (threads == 1)
    return sys.spawn<caf::detached>(file_worker, service);
  auto pool = caf::actor_pool::make(
      sys.dummy_execution_unit(), threads,
      [&] { return caf::actor_cast<caf::actor>(sys.spawn<caf::detached>(file_worker, service)); },
      caf::actor_pool::round_robin());
  return caf::actor_cast<file_actor>(pool);
}

file_client::file_client(caf::actor_system& sys, file_actor actor,
                         std::chrono::milliseconds timeout)
  : sys_(&sys), actor_(std::move(actor)), timeout_(timeout) {
}

namespace {

file_error request_failed(caf::actor_system& sys, const caf::error& e) {
  const bool late = e == caf::sec::request_timeout;
  return {late ? file_errc::timed_out : file_errc::io_error, "file actor: " + sys.render(e)};
}

}  // namespace

file_read_result file_client::read(const std::string& path) const {
  file_read_result out;
  caf::scoped_actor self{*sys_};
  self->request(actor_, timeout_, read_atom_v, path)
      .receive([&](file_read_result& r) { out = std::move(r); },
               [&](caf::error& e) { out.error = request_failed(*sys_, e); });
  return out;
}

file_write_result file_client::write(const std::string& path, std::string data) const {
  file_write_result out;
  caf::scoped_actor self{*sys_};
  self->request(actor_, timeout_, write_atom_v, path, std::move(data))
      .receive([&](file_write_result& r) { out = std::move(r); },
               [&](caf::error& e) { out.error = request_failed(*sys_, e); });
  return out;
}

}  // namespace tasker::actors
