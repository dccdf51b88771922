// The SQL store: one implementation of the store semantics in portable SQL,
// over a small connection interface. SQLite is its first driver; PostgreSQL
// plugs in as a second driver with its own dialect (placeholders, row locks).
#pragma once

#include <memory>
#include <string>

#include "store.hpp"

namespace tasker::core {

struct sqlite_options {
  std::string path;
  int busy_timeout_ms = 5000;
  std::string synchronous = "normal";  ///< normal | full | off
};

/// Opens (creating if needed) an SQLite database and its schema.
std::unique_ptr<store> make_sqlite_store(const sqlite_options& options);

}  // namespace tasker::core
