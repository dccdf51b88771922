#include "store/postgres/connection.hpp"

namespace tasker::core {

void ignore_notice(void*, const char*) {
}

void pg_connection::connect() {
  PQfinish(c_);
  prepared_.clear();
  forget_prepared_ = false;
  c_ = PQconnectdb(conninfo_.c_str());
  if (PQstatus(c_) != CONNECTION_OK) {
    std::string msg = c_ ? PQerrorMessage(c_) : "out of memory";
    PQfinish(c_);
    c_ = nullptr;
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    fail(TK_STORE_ERROR, "postgresql: cannot connect: " + msg);
  }
  PQsetNoticeProcessor(c_, &ignore_notice, nullptr);
  backend_pid_.store(PQbackendPID(c_), std::memory_order_relaxed);
  // Quiet NOTICEs (CREATE ... IF NOT EXISTS), and our tables first.
  PQclear(PQexec(c_, "SET client_min_messages TO warning"));
  // Every statement is prepared once and written for one plan (index
  // walks in claim or id order): planning it again on each run, as
  // PostgreSQL's default does for its first runs and whenever a custom plan
  // looks cheaper, cost more than running it (a worker's cycle went from
  // about 0.9 ms to 0.5 ms).
  PQclear(PQexec(c_, "SET plan_cache_mode TO force_generic_plan"));
  // A generic plan is made once, often while the tables are still empty,
  // when a sequential scan looks cheapest; every statement here has an
  // index to walk, and with thousands of rows a scan is ruinous (measured:
  // 100 us per updated row instead of 10). Likewise a hash or merge join:
  // on small tables, walking all of tk_tasks' or tk_steps' primary key
  // once looks cheaper than a probe per row, and the plan keeps doing so
  // as the tables grow (seen: every save of steps walked the whole key).
  // Every join here pairs a handful of rows with their rows by key.
  PQclear(PQexec(c_, "SET enable_seqscan TO off"));
  PQclear(PQexec(c_, "SET enable_hashjoin TO off"));
  PQclear(PQexec(c_, "SET enable_mergejoin TO off"));
  check(PQexec(c_, ("SET search_path TO \"" + schema_ + "\"").c_str()), "SET search_path");
}

void pg_connection::lost(const std::string& why) {
  PQfinish(c_);
  c_ = nullptr;
  prepared_.clear();
  fail(TK_STORE_ERROR, "postgresql: connection lost (" + why + "); the next call reconnects");
}

pg_result pg_connection::check(PGresult* r, const std::string& sql) {
  const auto st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
    return pg_result{r};
  std::string msg = r ? PQresultErrorMessage(r) : "";
  if (msg.empty() && c_)
    msg = PQerrorMessage(c_);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
    msg.pop_back();
  PQclear(r);
  if (!c_ || PQstatus(c_) != CONNECTION_OK)
    lost(msg);
  fail(TK_STORE_ERROR, "postgresql: " + msg + " [" + sql.substr(0, 60) + "]");
}

void pg_connection::rollback() noexcept {
  queued_.clear();
  begin_pending_ = false;
  commits_queued_ = false;
  if (!in_tx_)
    return;
  in_tx_ = false;
  if (c_ && PQstatus(c_) == CONNECTION_OK && PQtransactionStatus(c_) != PQTRANS_IDLE)
    PQclear(PQexec(c_, "ROLLBACK"));
  if (forget_prepared_ && c_ && PQstatus(c_) == CONNECTION_OK) {
    PQclear(PQexec(c_, "DEALLOCATE ALL"));
    prepared_.clear();
    forget_prepared_ = false;
  }
}

std::vector<pg_result> pg_connection::send() {
  std::vector<pg_result> results_;
  static const std::string begin_rw = "BEGIN";
  static const std::string begin_ro = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
  const bool with_begin = std::exchange(begin_pending_, false);
  const bool with_commit = std::exchange(commits_queued_, false);
  auto batch = std::move(queued_);
  queued_.clear();
  if (batch.empty() && !with_begin)
    return results_;
  for (std::size_t i = 0; i < batch.size() + (with_begin ? 1 : 0); ++i)
    count_statement();
  if (with_begin || !in_tx_)
    ensure_connected();  // nothing of this transaction ran yet
  else if (!c_ || PQstatus(c_) != CONNECTION_OK)
    lost("closed");
  const bool first_batch = batches_++ == 0;

  if (PQenterPipelineMode(c_) != 1)
    lost("cannot enter pipeline mode");
  std::vector<bool> is_query;  // per expected result: query (kept) or prepare (dropped)
  auto send_failed = [&] {
    std::string msg = PQerrorMessage(c_);
    PQexitPipelineMode(c_);
    lost(msg);
  };
  if (with_begin) {
    const auto& b = read_only_ ? begin_ro : begin_rw;
    if (PQsendQueryParams(c_, b.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1)
      send_failed();
    is_query.push_back(false);
    if (async_commit_) {
      static const char* off = "SET LOCAL synchronous_commit = off";
      if (PQsendQueryParams(c_, off, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1)
        send_failed();
      is_query.push_back(false);
    }
  }
  std::vector<std::size_t> prepared_now;
  for (auto& q : batch) {
    if (q.slot == unnamed) {
      if (PQsendQueryParams(c_, q.sql->c_str(), q.params.size(), nullptr, q.params.pointers(),
                            nullptr, nullptr, 0)
          != 1)
        send_failed();
      is_query.push_back(true);
      continue;
    }
    if (q.slot >= prepared_.size())
      prepared_.resize(q.slot + 1, false);
    const std::string name = "tk" + std::to_string(q.slot);
    if (!prepared_[q.slot]) {
      if (PQsendPrepare(c_, name.c_str(), q.sql->c_str(), q.params.size(), nullptr) != 1)
        send_failed();
      prepared_[q.slot] = true;
      prepared_now.push_back(q.slot);
      is_query.push_back(false);
    }
    if (PQsendQueryPrepared(c_, name.c_str(), q.params.size(), q.params.pointers(), nullptr,
                            nullptr, 0)
        != 1)
      send_failed();
    is_query.push_back(true);
  }
  if (PQpipelineSync(c_) != 1)
    send_failed();

  std::string error, state, failed_sql;
  bool broken = false;
  std::size_t query_index = 0, got = 0, error_at = 0;
  for (std::size_t i = 0; i < is_query.size() && !broken; ++i) {
    PGresult* r = PQgetResult(c_);
    if (!r) {
      broken = true;
      break;
    }
    ++got;
    const auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_ABORTED
        && error.empty()) {
      error_at = got;
      error = PQresultErrorMessage(r);
      if (const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE))
        state = code;
      if (is_query[i] && query_index < batch.size())
        failed_sql = *batch[query_index].sql;
    }
    if (is_query[i]) {
      results_.emplace_back(r);
      ++query_index;
    } else {
      PQclear(r);
    }
    if (PGresult* end = PQgetResult(c_)) {  // each result ends with a null
      PQclear(end);
      broken = true;
    }
  }
  if (!broken) {
    PGresult* sync = PQgetResult(c_);
    broken = !sync || PQresultStatus(sync) != PGRES_PIPELINE_SYNC;
    PQclear(sync);
  }
  if (broken || PQstatus(c_) != CONNECTION_OK) {
    std::string msg = error.empty() ? std::string(PQerrorMessage(c_)) : error;
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    // The server went away between calls, so nothing of this transaction
    // ran: it runs again on a new connection. Known when no COMMIT was sent,
    // or when the first answer was the server ending the session (SQLSTATE
    // 57P01-57P03: it was shutting down before it read our statements). A
    // server that crashed mid-batch may have committed: that is reported.
    const bool ended_first = error_at == 1 && state.rfind("57P", 0) == 0;
    if (first_batch && with_begin && (!with_commit || ended_first)) {
      PQfinish(c_);
      c_ = nullptr;
      prepared_.clear();
      throw pg_conflict(TK_STORE_ERROR, "postgresql: connection lost (" + msg + ")");
    }
    lost(msg);
  }
  PQexitPipelineMode(c_);
  if (!error.empty()) {
    while (!error.empty() && (error.back() == '\n' || error.back() == ' '))
      error.pop_back();
    if (!prepared_now.empty())
      forget_prepared_ = true;  // which of them exist is unclear: the rollback clears them all
    std::string what = "postgresql: " + error + " [" + failed_sql.substr(0, 60) + "]";
    if (state == "40001" || state == "40P01")
      throw pg_conflict(TK_STORE_ERROR, what);
    fail(TK_STORE_ERROR, what);
  }
  return results_;
}

}  // namespace tasker::core
