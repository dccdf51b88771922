// file_bench: the file actor against the naive way, std::ifstream read into
// a std::string, on files of 4 KiB, 1 MiB and 256 MiB (in the page cache:
// they are written just before).
//
//   read   get the bytes: a file actor request (open + fstat + mmap, the
//          view goes back; no byte is touched) against ifstream (every byte
//          copied into a fresh string)
//   scan   a handler that counts the newlines: read, then walk every byte
//          (with mmap the page faults happen here, in the handler)
//
// Requests go from a scoped_actor in main to the (detached) file actor and
// back, so each actor figure includes two thread hand-offs.
//
//   file_bench [--quick]    (--quick: 4 KiB, 1 MiB, 16 MiB; fewer repetitions)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "stats.hpp"
#include "table.hpp"
#include <tasker/actors/file_actor.hpp>
#include <tasker/test/temp_dir.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

struct size_case {
  const char* label;
  std::size_t bytes;
  int reps;
};

template <class F>
double time_us(F&& f) {
  const auto t0 = clock_type::now();
  f();
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

/// Lines of 64 bytes ending in '\n'.
void generate(const std::string& path, std::size_t bytes) {
  std::string line(63, 'x');
  line += '\n';
  std::string block;
  while (block.size() < (1u << 20))
    block += line;
  std::ofstream out{path, std::ios::binary};
  for (std::size_t left = bytes; left > 0;) {
    const auto n = std::min(left, block.size());
    out.write(block.data(), static_cast<std::streamsize>(n));
    left -= n;
  }
}

std::string ifstream_read(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  in.seekg(0, std::ios::end);
  std::string s(static_cast<std::size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  return s;
}

std::size_t count_newlines(std::string_view s) {
  std::size_t n = 0;
  const char* p = s.data();
  const char* end = p + s.size();
  while ((p = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p))))) {
    ++n;
    ++p;
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--quick") {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: file_bench [--quick]\n");
      return 2;
    }
  }
  std::vector<size_case> cases = quick ? std::vector<size_case>{{"4 KiB", 4u << 10, 300},
                                                                {"1 MiB", 1u << 20, 50},
                                                                {"16 MiB", 16u << 20, 5}}
                                       : std::vector<size_case>{{"4 KiB", 4u << 10, 2000},
                                                                {"1 MiB", 1u << 20, 300},
                                                                {"256 MiB", 256u << 20, 7}};

  tasker::test::temp_dir dir;
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2).set("work-stealing.moderate-poll-attempts", 0);
  caf::actor_system sys{cfg};
  tasker::actors::file_actor_config fc;
  fc.roots = {dir.path()};
  auto files = tasker::actors::spawn_file_actor(sys, fc);

  // The same operations without the actor: what the two thread hand-offs cost.
  tasker::actors::file_service direct{fc};

  std::printf("file_bench%s: medians in microseconds; ratio = ifstream / file actor (> 1: the "
              "actor is faster)\n",
              quick ? " --quick" : "");
  std::printf("%-8s %5s | %11s %11s %11s %7s | %11s %11s %7s\n", "size", "reps", "read actor",
              "(no actor)", "read ifstrm", "ratio", "scan actor", "scan ifstrm", "ratio");
  bool ok = true;
  {
    caf::scoped_actor self{sys};
    auto actor_read = [&](const std::string& name) {
      tasker::file_read_result out;
      self->request(files, std::chrono::seconds{60}, tasker::read_atom_v, name)
          .receive([&](tasker::file_read_result& r) { out = std::move(r); },
                   [&](caf::error& e) {
                     out.error = {tasker::file_errc::io_error, sys.render(e)};
                   });
      return out;
    };
    for (const auto& c : cases) {
      const std::string name = "f" + std::to_string(c.bytes);
      const auto path = (dir.path() / name).string();
      generate(path, c.bytes);
      const auto lines = c.bytes / 64;
      std::vector<double> read_actor, read_direct, read_stream, scan_actor, scan_stream;
      for (int rep = 0; rep <= c.reps; ++rep) {  // rep 0 warms up
        std::size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0, n5 = 0;
        const double a = time_us([&] { n1 = actor_read(name).view.size(); });
        const double d = time_us([&] { n5 = direct.read(name).view.size(); });
        const double b = time_us([&] { n2 = ifstream_read(path).size(); });
        const double s1 = time_us([&] { n3 = count_newlines(actor_read(name).view.view()); });
        const double s2 = time_us([&] { n4 = count_newlines(ifstream_read(path)); });
        if (n1 != c.bytes || n2 != c.bytes || n3 != lines || n4 != lines || n5 != c.bytes) {
          std::fprintf(stderr, "file_bench: wrong result for %s\n", c.label);
          ok = false;
        }
        if (rep == 0)
          continue;
        read_actor.push_back(a);
        read_direct.push_back(d);
        read_stream.push_back(b);
        scan_actor.push_back(s1);
        scan_stream.push_back(s2);
      }
      const double ra = bench::median(read_actor), rd = bench::median(read_direct),
                   rs = bench::median(read_stream);
      const double sa = bench::median(scan_actor), ss = bench::median(scan_stream);
      std::printf("%-8s %5d | %11.1f %11.1f %11.1f %6.2fx | %11.1f %11.1f %6.2fx\n", c.label,
                  c.reps, ra, rd, rs, rs / ra, sa, ss, ss / sa);
      std::fflush(stdout);
      const std::string size = c.label;
      // Zero copy pays where a copy costs more than a message round trip
      // (about 60 us): from a few MiB on. Below, the rows are for
      // information (docs/optimizations.md says not to use it there); the
      // issue's target is 2x on large files, > 10 % where it applies.
      const double goal = c.bytes >= (64u << 20) ? 2.0 : 1.1;
      if (c.bytes < (4u << 20)) {
        bench::table_row_info("file actor read " + size + " vs ifstream (small: not worth it)",
                              bench::fmt(rs, "us"), bench::fmt(ra, "us"), rs / ra);
        bench::table_row_info("file actor scan " + size + " vs ifstream (small: not worth it)",
                              bench::fmt(ss, "us"), bench::fmt(sa, "us"), ss / sa);
      } else {
        bench::table_row("file actor read " + size + " vs ifstream", bench::fmt(rs, "us"),
                         bench::fmt(ra, "us"), rs / ra, goal);
        bench::table_row("file actor scan " + size + " vs ifstream", bench::fmt(ss, "us"),
                         bench::fmt(sa, "us"), ss / sa, 1.1);
      }
      std::remove(path.c_str());
    }
  }
  caf::anon_send_exit(files, caf::exit_reason::user_shutdown);
  return ok ? 0 : 1;
}
