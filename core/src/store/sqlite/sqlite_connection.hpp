#pragma once

#include <memory>

#include "store/sqlite/sql_connection.hpp"
#include "store/sqlite/sql_store.hpp"

namespace tasker::core {

/// Opens an SQLite database in WAL mode with the given options.
std::unique_ptr<sql_connection> open_sqlite(const sqlite_options& options);

}  // namespace tasker::core
