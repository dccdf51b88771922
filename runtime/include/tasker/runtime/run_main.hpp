// The main() of a worker program in one line.
#pragma once

#include <functional>

#include <tasker/runtime/worker.hpp>
#include <tasker/runtime/worker_config.hpp>

namespace tasker {

/// What a worker program does once its worker exists; returns main()'s exit code.
using worker_main = std::function<int(worker&)>;

/// Runs a worker program and returns main()'s exit code:
///
///     int main(int argc, char** argv) {
///       return tasker::run_main(argc, argv, [](tasker::worker& w) { ...; return w.run(); });
///     }
///
/// Reads the settings (worker_config::parse_args: INI file, environment,
/// command line). `--help` prints the options and gives 0, a bad value prints
/// what is wrong and gives 2; neither builds a worker. Otherwise builds the
/// worker and returns what `body` returns. A template_error (a YAML template
/// that does not load: one of `--templates`, or one `body` loads itself)
/// prints every problem, one a line, and gives 2. Any other exception from the worker's start (a
/// store that cannot be opened) or from `body` is printed to stderr and gives 1. Either way after
/// the worker has stopped.
int run_main(int argc, char** argv, const worker_main& body);

/// The same on settings of the caller's (defaults set before, or a type
/// derived from worker_config with options of its own); `cfg` must outlive
/// the call, as the worker refers to it.
int run_main(worker_config& cfg, int argc, char** argv, const worker_main& body);

}  // namespace tasker
