#pragma once

#include <memory>

#include "sql_connection.hpp"
#include "sql_store.hpp"

namespace tasker::core {

/// Opens an SQLite database in WAL mode with the given options.
std::unique_ptr<sql_connection> open_sqlite(const sqlite_options& options);

}  // namespace tasker::core
