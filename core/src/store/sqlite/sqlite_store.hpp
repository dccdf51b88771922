// The SQLite store: the store semantics in SQL, row by row, over one SQLite
// connection (sqlite_connection.hpp). (PostgreSQL has a store of its own,
// pg_store.hpp: over a network, row by row costs a round trip per statement.)
#pragma once

#include <memory>
#include <string>

#include "store/store.hpp"

namespace tasker::core {

struct sqlite_options {
  std::string path;
  int busy_timeout_ms = 5000;
  std::string synchronous = "normal";  ///< normal | full | off
};

/// Opens (creating if needed) an SQLite database and its schema.
std::unique_ptr<store> make_sqlite_store(const sqlite_options& options);

}  // namespace tasker::core
