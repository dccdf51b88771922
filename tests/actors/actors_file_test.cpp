// The file actor on real threads and a real file system: zero-copy reads,
// atomic writes, confinement to the roots, size caps, and errors as values.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tasker/actors/file_actor.hpp>
#include <tasker/test/temp_dir.hpp>

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace actors = tasker::actors;
using tasker::file_errc;
using tasker::file_read_result;
using tasker::file_write_result;

namespace {

using tasker::test::temp_dir;

void put(const fs::path& p, const std::string& content) {
  std::ofstream out{p, std::ios::binary};
  out << content;
}

std::string slurp(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

actors::file_actor_config rooted_at(const fs::path& root) {
  actors::file_actor_config c;
  c.roots = {root};
  return c;
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys;
  temp_dir root;   // the file actor's root
  temp_dir other;  // outside every root
  actors::file_actor files;

  fixture()
    : sys{cfg.set("scheduler.max-threads", 2).set("work-stealing.moderate-poll-attempts", 0)} {}

  ~fixture() {
    if (files)
      caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
  }

  void start(actors::file_actor_config c = {}) {
    if (c.roots.empty())
      c.roots = {root.path()};
    files = actors::spawn_file_actor(sys, std::move(c));
  }

  file_read_result read(const std::string& path) {
    file_read_result out;
    caf::scoped_actor self{sys};
    bool answered = false;
    self->request(files, 10s, tasker::read_atom_v, path)
        .receive(
            [&](file_read_result& r) {
              out = std::move(r);
              answered = true;
            },
            [&](caf::error& e) { FAIL("read failed: " << sys.render(e)); });
    REQUIRE(answered);
    return out;
  }

  file_write_result write(const std::string& path, std::string data) {
    file_write_result out;
    caf::scoped_actor self{sys};
    bool answered = false;
    self->request(files, 30s, tasker::write_atom_v, path, std::move(data))
        .receive(
            [&](file_write_result& r) {
              out = std::move(r);
              answered = true;
            },
            [&](caf::error& e) { FAIL("write failed: " << sys.render(e)); });
    REQUIRE(answered);
    return out;
  }
};

/// The /proc/self/maps line of the mapping that holds `address`.
std::string mapping_of(const void* address) {
  std::ifstream maps{"/proc/self/maps"};
  const auto a = reinterpret_cast<std::uintptr_t>(address);
  for (std::string line; std::getline(maps, line);) {
    std::uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
      return line;
  }
  return {};
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  return names;
}

}  // namespace

TEST_CASE_FIXTURE(fixture,
                  "a read is an mmap of the file, shared by a second read" * doctest::timeout(60)) {
  start();
  std::string content(200'000, '\0');
  for (std::size_t i = 0; i < content.size(); ++i)
    content[i] = static_cast<char>('a' + i % 26);
  put(root.path() / "data.txt", content);

  auto first = read("data.txt");
  auto second = read((root.path() / "data.txt").string());  // absolute, same file
  REQUIRE_FALSE(first.error);
  REQUIRE_FALSE(second.error);
  CHECK(first.view.view() == content);
  CHECK(first.view.mapped());
  // No copy: both views are the same bytes, and those bytes are a mapping
  // of the file itself, not heap memory.
  CHECK(first.view.data() == second.view.data());
  const auto line = mapping_of(first.view.data());
  INFO("mapping: " << line);
  CHECK(line.find((root.path() / "data.txt").string()) != std::string::npos);
  CHECK(line.find("[heap]") == std::string::npos);
}

TEST_CASE_FIXTURE(fixture, "a view outlives the actor that made it" * doctest::timeout(60)) {
  start();
  put(root.path() / "keep.txt", "still here after the actor is gone");
  auto r = read("keep.txt");
  REQUIRE_FALSE(r.error);
  {
    caf::scoped_actor self{sys};
    self->monitor(files);
    caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
    bool down = false;
    self->receive([&](caf::down_msg&) { down = true; }, caf::after(10s) >> [] {});
    REQUIRE(down);
  }
  files = nullptr;
  // The actor (and its cache) dropped their references: this view is the
  // mapping's only owner, and the bytes are still mapped and readable.
  CHECK(r.view.use_count() == 1);
  CHECK(r.view.view() == "still here after the actor is gone");
  CHECK(mapping_of(r.view.data()).find("keep.txt") != std::string::npos);
}

TEST_CASE_FIXTURE(fixture, "an empty file reads as an empty view" * doctest::timeout(60)) {
  start();
  put(root.path() / "empty", "");
  auto r = read("empty");
  REQUIRE_FALSE(r.error);
  CHECK(r.view.empty());
  CHECK(r.view.view().empty());
}

TEST_CASE_FIXTURE(fixture, "paths that leave the roots are refused, naming the path and the roots"
                               * doctest::timeout(60)) {
  start();
  put(other.path() / "secret", "outside");
  fs::create_directory(root.path() / "sub");
  put(root.path() / "sub" / "inside", "inside");
  fs::create_symlink(other.path() / "secret", root.path() / "escape");       // a file outside
  fs::create_symlink(other.path(), root.path() / "outdir");                  // a directory outside
  fs::create_symlink(root.path() / "sub" / "inside", root.path() / "fine");  // stays inside

  for (const std::string& path :
       {std::string("../secret"), std::string("sub/../../secret"), std::string("sub/.."),
        (root.path() / ".." / other.path().filename() / "secret").string(),
        (other.path() / "secret").string(), std::string("/etc/passwd"), std::string("escape"),
        std::string("outdir/secret")}) {
    CAPTURE(path);
    auto r = read(path);
    CHECK(r.error.code == file_errc::outside_roots);
    CHECK(r.error.message.find(path) != std::string::npos);
    CHECK(r.error.message.find(root.path().string()) != std::string::npos);
    CHECK(r.view.empty());
  }
  for (const std::string& path : {std::string("../new"), (other.path() / "new").string(),
                                  std::string("outdir/new"), std::string("sub/../../new")}) {
    CAPTURE(path);
    auto w = write(path, "x");
    CHECK(w.error.code == file_errc::outside_roots);
    CHECK(w.error.message.find(root.path().string()) != std::string::npos);
  }
  CHECK_FALSE(fs::exists(other.path() / "new"));
  CHECK(slurp(other.path() / "secret") == "outside");

  // A symlink that stays inside the roots is followed; one at the target of
  // a write is replaced, not followed.
  CHECK(read("fine").view.view() == "inside");
  auto w = write("escape", "replaced the link");
  REQUIRE_FALSE(w.error);
  CHECK_FALSE(fs::is_symlink(root.path() / "escape"));
  CHECK(slurp(root.path() / "escape") == "replaced the link");
  CHECK(slurp(other.path() / "secret") == "outside");
}

TEST_CASE_FIXTURE(fixture, "a missing file or directory is not_found" * doctest::timeout(60)) {
  start();
  auto r = read("no-such-file");
  CHECK(r.error.code == file_errc::not_found);
  CHECK(r.error.message.find("no-such-file") != std::string::npos);
  auto w = write("no-such-dir/file", "x");
  CHECK(w.error.code == file_errc::not_found);
  CHECK(w.error.message.find("no-such-dir/file") != std::string::npos);
}

TEST_CASE_FIXTURE(fixture,
                  "directories, empty paths and NUL bytes are refused" * doctest::timeout(60)) {
  start();
  fs::create_directory(root.path() / "dir");
  CHECK(read("dir").error.code == file_errc::not_a_file);
  CHECK(write("dir", "x").error.code == file_errc::not_a_file);
  CHECK(write("dir/", "x").error.code == file_errc::invalid_path);
  CHECK(read("").error.code == file_errc::invalid_path);
  CHECK(read(std::string("a\0b", 3)).error.code == file_errc::invalid_path);
  CHECK(write(root.path().string(), "x").error.code
        == file_errc::outside_roots);  // the root itself
}

namespace {

/// Tries a read and a write the OS refuses (as user nobody when we are
/// root, since root reads anything); -1 when that cannot be arranged.
int permission_probe(const fs::path& dir) {
  put(dir / "locked", "no");
  fs::permissions(dir / "locked", fs::perms::none);
  fs::create_directory(dir / "ro");
  fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read
                                  | fs::perms::group_exec | fs::perms::others_read
                                  | fs::perms::others_exec);
  auto probe = [&]() -> int {
    actors::file_service files{rooted_at(dir)};
    const auto r = files.read("locked");
    const auto w = files.write("ro/new", "x");
    const bool ok = r.error.code == file_errc::permission_denied
                    && r.error.message.find("locked") != std::string::npos
                    && w.error.code == file_errc::permission_denied;
    return ok ? 0 : 1;
  };
  if (::geteuid() != 0)
    return probe();
  // Root: check as nobody in a child (no threads exist yet in this test).
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec
                           | fs::perms::others_read | fs::perms::others_exec);
  const pid_t pid = ::fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    const gid_t nogroup = 65534;
    if (::setgroups(1, &nogroup) != 0 || ::setresgid(65534, 65534, 65534) != 0
        || ::setresuid(65534, 65534, 65534) != 0)
      ::_exit(3);
    ::_exit(probe());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 3)
    return -1;
  return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE("a file the OS refuses is permission_denied" * doctest::timeout(60)) {
  temp_dir dir;
  const int outcome = permission_probe(dir.path());
  if (outcome < 0) {
    MESSAGE("running as root and cannot drop to user nobody: permission check skipped");
    return;
  }
  if (::geteuid() == 0)
    MESSAGE("running as root: the permission check ran in a child process as user nobody");
  CHECK(outcome == 0);
}

TEST_CASE_FIXTURE(fixture,
                  "over-size reads and writes are errors, not truncations" * doctest::timeout(60)) {
  actors::file_actor_config c;
  c.max_read_bytes = 1000;
  c.max_write_bytes = 1000;
  start(c);
  put(root.path() / "exact", std::string(1000, 'e'));
  put(root.path() / "big", std::string(1001, 'b'));
  CHECK(read("exact").view.size() == 1000);
  auto r = read("big");
  CHECK(r.error.code == file_errc::too_large);
  CHECK(r.error.message.find("1001") != std::string::npos);
  CHECK(r.view.empty());

  put(root.path() / "target", "old content");
  auto w = write("target", std::string(1001, 'n'));
  CHECK(w.error.code == file_errc::too_large);
  CHECK(slurp(root.path() / "target") == "old content");
  CHECK(write("target", std::string(1000, 'n')).size == 1000);
  CHECK(names_in(root.path()).size() == 3);  // exact, big, target: no temp file left
}

TEST_CASE_FIXTURE(fixture, "a write is atomic: readers see the old or the new content, never a part"
                               * doctest::timeout(90)) {
  start();
  const std::size_t size = 1 << 20;
  const auto target = root.path() / "state.bin";
  put(target, std::string(size, 'a'));
  fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);

  std::atomic<bool> writing{true};
  std::atomic<int> reads{0}, torn{0};
  std::thread reader([&] {
    while (writing.load()) {
      auto s = slurp(target);
      ++reads;
      const bool whole = s.size() == size && (s.front() == 'a' || s.front() == 'b')
                         && s.find_first_not_of(s.front()) == std::string::npos;
      if (!whole)
        ++torn;
    }
  });
  for (int i = 0; i < 20; ++i) {
    auto w = write("state.bin", std::string(size, i % 2 == 0 ? 'b' : 'a'));
    REQUIRE_FALSE(w.error);
    CHECK(w.size == size);
  }
  writing = false;
  reader.join();
  INFO("reads: " << reads.load());
  CHECK(reads.load() > 0);
  CHECK(torn.load() == 0);
  CHECK(slurp(target) == std::string(size, 'a'));
  // The permission bits survive the replacement, and no temp file is left.
  CHECK((fs::status(target).permissions() & fs::perms::all)
        == (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
  CHECK(names_in(root.path()) == std::vector<std::string>{"state.bin"});

  // A new file in a subdirectory; the directory must exist.
  fs::create_directory(root.path() / "out");
  REQUIRE_FALSE(write("out/new.txt", "fresh").error);
  CHECK(slurp(root.path() / "out" / "new.txt") == "fresh");
  CHECK(read("out/new.txt").view.view() == "fresh");
}

TEST_CASE_FIXTURE(fixture, "a FIFO is read through the buffer fallback, up to its writer's end"
                               * doctest::timeout(60)) {
  actors::file_actor_config c;
  c.pipe_timeout = 20s;
  start(c);
  const auto fifo = root.path() / "pipe";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::thread writer([&] {
    int fd = ::open(fifo.c_str(), O_WRONLY);  // waits for the actor to open it
    if (fd < 0)
      return;
    const std::string text = "through a pipe\n";
    for (int i = 0; i < 1000; ++i)
      (void)!::write(fd, text.data(), text.size());
    ::close(fd);
  });
  auto r = read("pipe");
  // Should the actor have failed before opening the FIFO, this open lets
  // the writer go.
  int unblock = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  writer.join();
  ::close(unblock);
  REQUIRE_FALSE(r.error);
  CHECK_FALSE(r.view.mapped());
  CHECK(r.view.size() == 15000);
  CHECK(r.view.view().substr(0, 15) == "through a pipe\n");
}

TEST_CASE_FIXTURE(fixture, "a FIFO nobody writes times out" * doctest::timeout(60)) {
  actors::file_actor_config c;
  c.pipe_timeout = 200ms;
  start(c);
  REQUIRE(::mkfifo((root.path() / "silent").c_str(), 0600) == 0);
  auto r = read("silent");
  CHECK(r.error.code == file_errc::timed_out);
}

TEST_CASE_FIXTURE(fixture,
                  "/proc files are read through the buffer fallback" * doctest::timeout(60)) {
  actors::file_actor_config c;
  c.roots = {root.path(), "/proc/self"};
  start(c);
  auto r = read("/proc/self/status");
  REQUIRE_FALSE(r.error);
  CHECK_FALSE(r.view.mapped());
  CHECK(r.view.view().find("Name:") != std::string::npos);
  // Over the read cap, a stream is refused too.
  c.max_read_bytes = 10;
  caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
  start(c);
  CHECK(read("/proc/self/status").error.code == file_errc::too_large);
}

TEST_CASE_FIXTURE(fixture,
                  "several threads serve reads and writes at once" * doctest::timeout(60)) {
  actors::file_actor_config c;
  c.threads = 3;
  start(c);
  put(root.path() / "shared.txt", "shared");
  // Thirty requests in flight at once (plain sends: the replies come back
  // as messages, in any order).
  caf::scoped_actor self{sys};
  for (int i = 0; i < 30; ++i) {
    if (i % 3 == 0)
      self->send(files, tasker::write_atom_v, "w" + std::to_string(i), std::string(10, 'w'));
    else
      self->send(files, tasker::read_atom_v, std::string("shared.txt"));
  }
  int reads_ok = 0, writes_ok = 0, answers = 0;
  bool late = false;
  while (answers < 30 && !late)
    self->receive(
        [&](file_write_result& w) {
          ++answers;
          writes_ok += w.error ? 0 : 1;
        },
        [&](file_read_result& r) {
          ++answers;
          reads_ok += r.view.view() == "shared" ? 1 : 0;
        },
        caf::after(30s) >> [&] { late = true; });
  CHECK(reads_ok == 20);
  CHECK(writes_ok == 10);
}

TEST_CASE_FIXTURE(fixture,
                  "file_client makes blocking calls with a timeout" * doctest::timeout(60)) {
  start();
  actors::file_client client{sys, files, 10s};
  REQUIRE_FALSE(client.write("c.txt", "via the client").error);
  CHECK(client.read("c.txt").view.view() == "via the client");
  CHECK(client.read("missing").error.code == file_errc::not_found);
  // A dead actor is an error value too.
  caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
  {
    caf::scoped_actor self{sys};
    self->monitor(files);
    self->receive([](caf::down_msg&) {}, caf::after(10s) >> [] {});
  }
  auto r = client.read("c.txt");
  CHECK(r.error.code == file_errc::io_error);
  CHECK(r.error.message.find("file actor") != std::string::npos);
}

TEST_CASE("a file_view prints its size and refuses to be serialized" * doctest::timeout(60)) {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg.set("scheduler.max-threads", 1)};
  temp_dir dir;
  put(dir.path() / "f", "12345");
  actors::file_service files{rooted_at(dir.path())};
  auto r = files.read("f");
  REQUIRE_FALSE(r.error);
  CHECK(caf::deep_to_string(r.view).find("tasker::file_view") != std::string::npos);
  std::vector<char> buffer;
  caf::binary_serializer sink{sys, buffer};
  auto err = sink(r);
  CHECK(err);
  CHECK(sys.render(err).find("local") != std::string::npos);
}

TEST_CASE("a bad configuration fails at start-up" * doctest::timeout(60)) {
  CHECK_THROWS_AS(actors::file_service(actors::file_actor_config{}), std::invalid_argument);
  actors::file_actor_config c;
  c.roots = {"/no/such/root/anywhere"};
  CHECK_THROWS_AS(actors::file_service{c}, std::invalid_argument);
  c.roots = {"/etc/hostname"};
  CHECK_THROWS_AS(actors::file_service{c}, std::invalid_argument);
}

TEST_CASE("errno values map onto file_errc" * doctest::timeout(10)) {
  using s = actors::file_service;
  CHECK(s::classify(ENOENT) == file_errc::not_found);
  CHECK(s::classify(ENOTDIR) == file_errc::not_found);
  CHECK(s::classify(EACCES) == file_errc::permission_denied);
  CHECK(s::classify(EPERM) == file_errc::permission_denied);
  CHECK(s::classify(EROFS) == file_errc::permission_denied);
  CHECK(s::classify(EISDIR) == file_errc::not_a_file);
  CHECK(s::classify(EIO) == file_errc::io_error);
  CHECK(std::string(tasker::to_string(file_errc::outside_roots)) == "outside_roots");
}
