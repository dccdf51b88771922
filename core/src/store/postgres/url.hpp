// The PostgreSQL store's options, as a `postgresql://` URL gives them, and
// the one way to open the store: what the C ABI needs of the driver, without
// libpq's header.
#pragma once

#include <memory>
#include <string>

#include "store/store.hpp"

namespace tasker::core {

struct pg_options {
  std::string conninfo;           ///< what libpq gets: the URL without tasker's own parameters
  std::string schema = "tasker";  ///< the tables live in this schema, created if missing
  /// Workers' calls (claim, complete, heartbeat) commit without waiting for
  /// the WAL flush (synchronous_commit = off for those transactions). A
  /// server crash can then lose the last moments of progress, which runs
  /// again (steps are at-least-once anyway); task creation, cancellation and
  /// registration stay durable. Off by default.
  bool async_worker_commits = false;
};

/// Splits a `postgresql://` or `postgres://` URL: tasker's own query
/// parameters `schema=NAME` and `async_worker_commits=true|false` are taken
/// out, everything else is libpq's.
pg_options parse_pg_url(const std::string& url);

/// Refuses a schema name that is not 1-48 characters of a-z, 0-9 and _,
/// starting with a letter or _ (it goes into SQL text: identifiers cannot be
/// parameters).
void check_schema_name(const std::string& s);

/// Connects, creates or migrates the schema, and starts the LISTEN thread
/// that reports other processes' work to store::watch.
std::unique_ptr<store> make_pg_store(const pg_options& options);

}  // namespace tasker::core
