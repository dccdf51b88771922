// compress_checksum — handlers that run programs through the process actor
// (argv only, never a shell; timeouts; output caps).
//
//   generate ──▶ compress ──┬──▶ checksum ──┐
//                           └──▶ verify ────┴──▶ summary
//
// `generate` writes a compressible file (through the file actor), `compress`
// runs `gzip -k -9`, `checksum` runs `sha256sum` on the original and the
// archive, `verify` runs `gzip -dc` and compares what comes out with the
// original bytes, and `summary` gathers sizes and digests. main() checks the
// results against what it computes itself (the original's size and content).
// Run: compress_checksum [--store=memory: | --store=sqlite:cc.db]
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "check.hpp"
#include "scratch_dir.hpp"
#include <tasker/actors/file_actor.hpp>
#include <tasker/actors/process_actor.hpp>
#include <tasker/runtime/run_main.hpp>

namespace {

/// The generated file: numbered lines, so it compresses well and any
/// corruption shows.
std::string content(int lines) {
  std::string out;
  for (int i = 0; i < lines; ++i)
    out += "line " + std::to_string(i) + ": the quick brown fox jumps over the lazy dog\n";
  return out;
}

/// A failure naming the program and how it ended.
tasker::step_result failed(const std::string& what, const tasker::process_result& r) {
  std::string why = r.error != tasker::process_errc::none ? r.error_message
                    : r.timed_out                         ? std::string("timed out")
                    : r.exited ? "exit code " + std::to_string(r.exit_code)
                               : "signal " + std::to_string(r.term_signal);
  return tasker::failure(what + " failed: " + why + " " + r.stderr_data, "process_error");
}

}  // namespace

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    examples::scratch_dir data{"tasker-gz"};
    const std::string dir = data.path.string();

    tasker::actors::file_actor_config files_cfg;
    files_cfg.roots = {data.path};
    const tasker::actors::file_client files{w.system(),
                                            tasker::actors::spawn_file_actor(w.system(), files_cfg),
                                            std::chrono::seconds{10}};
    const tasker::actors::process_client procs{w.system(),
                                               tasker::actors::spawn_process_actor(w.system())};
    // Every program runs in the data directory with a small, explicit environment.
    auto request = [&dir](std::vector<std::string> program) {
      tasker::process_request r;
      r.argv = std::move(program);
      r.env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
      r.cwd = dir;
      r.timeout_ms = 20000;
      return r;
    };

    w.handle("generate", [&files](tasker::step_context& ctx) {
      auto written = files.write("data.txt", content(ctx.input<int>("lines")));
      if (written.error)
        return tasker::failure(written.error.message, "io_error");
      return tasker::success({{"file", "data.txt"}, {"bytes", written.size}});
    });

    w.handle("compress", [&](tasker::step_context& ctx) {
      const auto file = ctx.dependency<std::string>("generate", "file");
      auto r = procs.run(request({"gzip", "-k", "-f", "-9", file}));
      if (!r.ok())
        return failed("gzip", r);
      const auto archive = file + ".gz";
      return tasker::success({{"archive", archive},
                              {"bytes", std::filesystem::file_size(dir + "/" + archive)},
                              {"cpu_us", r.user_time_us + r.system_time_us}});
    });

    w.handle("checksum", [&](tasker::step_context& ctx) {
      const auto file = ctx.dependency<std::string>("generate", "file");
      const auto archive = ctx.dependency<std::string>("compress", "archive");
      auto r = procs.run(request({"sha256sum", file, archive}));
      if (!r.ok())
        return failed("sha256sum", r);
      // "<64 hex>  <name>\n" per file.
      tasker::json digests = tasker::json::object();
      std::string_view out = r.stdout_data;
      while (!out.empty()) {
        auto eol = out.find('\n');
        auto line = out.substr(0, eol);
        out.remove_prefix(eol == std::string_view::npos ? out.size() : eol + 1);
        if (line.size() < 67)
          return tasker::failure("unexpected sha256sum output", "process_error", false);
        digests[std::string(line.substr(66))] = std::string(line.substr(0, 64));
      }
      return tasker::success({{"sha256", digests}});
    });

    w.handle("verify", [&](tasker::step_context& ctx) {
      const auto archive = ctx.dependency<std::string>("compress", "archive");
      const auto bytes = ctx.dependency<std::int64_t>("generate", "bytes");
      auto req = request({"gzip", "-dc", archive});
      req.max_stdout = static_cast<std::uint64_t>(bytes) + 1;  // one more: a longer output shows
      auto r = procs.run(req);
      if (!r.ok())
        return failed("gzip -dc", r);
      auto original = files.read(ctx.dependency<std::string>("generate", "file"));
      if (original.error)
        return tasker::failure(original.error.message, "io_error");
      const bool same = !r.stdout_truncated && r.stdout_data == original.view.view();
      if (!same)
        return tasker::failure("the archive does not give back the original", "validation_error",
                               false);
      return tasker::success({{"round_trip", true}, {"bytes", r.stdout_data.size()}});
    });

    w.handle("summary", [](tasker::step_context& ctx) {
      return tasker::success({{"original", ctx.dependency<std::int64_t>("generate", "bytes")},
                              {"compressed", ctx.dependency<std::int64_t>("compress", "bytes")},
                              {"sha256", ctx.dependency_field("checksum", "sha256")},
                              {"round_trip", ctx.dependency<bool>("verify", "round_trip")}});
    });

    tasker::pipeline p{"examples", "compress_checksum", "1.0.0"};
    p.step("generate", "generate")
        .step("compress", "compress", tasker::after("generate"))
        .step("checksum", "checksum", tasker::after("compress"))
        .step("verify", "verify", tasker::after("compress"))
        .step("summary", "summary", tasker::after("checksum", "verify"));
    w.register_pipeline(p);

    auto& client = w.client();
    const int lines = 20000;
    const auto task = client.create(p, {{"lines", lines}});
    const auto state = client.wait(task);

    examples::checker check;
    check.equal("task state", state, "complete");
    if (state == "complete") {
      const auto s = client.result(task, "summary");
      const auto expected = static_cast<std::int64_t>(content(lines).size());
      std::cout << "task " << task << " " << state << ": " << s.at("original") << " bytes -> "
                << s.at("compressed") << " bytes, sha256 "
                << examples::show(s.at("sha256").at("data.txt")) << '\n';
      check.equal("original size", s.at("original").get<std::int64_t>(), expected);
      check.that(s.at("compressed").get<std::int64_t>() < expected / 10, "gzip compressed it well",
                 s.at("compressed"));
      check.that(s.at("sha256").at("data.txt").get<std::string>().size() == 64
                     && s.at("sha256").at("data.txt.gz").get<std::string>().size() == 64,
                 "two sha256 digests", s.at("sha256"));
      check.that(s.at("round_trip").get<bool>(), "gzip -dc gives back the original");
    }
    // A program that does not exist is an error value, not a crash.
    auto missing = procs.run(request({"/no/such/program"}));
    check.that(missing.error == tasker::process_errc::spawn_failed, "a missing program is reported",
               tasker::to_string(missing.error));
    return check.exit_code();
  });
}
