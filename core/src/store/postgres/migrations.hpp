// The PostgreSQL store's schema: numbered migrations, each run once.
#pragma once

#include <string>

#include "model/wait_token.hpp"
#include "store/postgres/connection.hpp"

namespace tasker::core {

/// The schema version this code writes and reads.
constexpr int schema_version = 4;

/// Creates the schema `schema` or migrates it to schema_version, in one
/// transaction under an advisory lock, so that workers starting together do
/// not race (tk_schema holds the version); then reads the wait-token secret
/// into `key`. A database newer than this code is refused.
void migrate(pg_connection& db, const std::string& schema, wait_key& key);

}  // namespace tasker::core
