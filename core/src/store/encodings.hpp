// The private text encodings of the stores, in one place. None is part of the
// C ABI; each is written and read only inside the core.
//
// 1. Dependency results (out, to the worker): `tk_step_event::dependency_results`
//    is a JSON object with one member per ancestor of the claimed step, in
//    step-index order: `{"<name>":<result>,...}`. add_event (model/transitions.hpp)
//    splices it from text: each step's `result_key` (its name, already escaped,
//    with the colon: pipeline.cpp) and the ancestor's stored result, or `null`
//    when it has none. Nothing is parsed or escaped on the way, because a stored
//    result is JSON checked by tk_complete (require_json) and the keys are
//    escaped once, at registration. Every store builds it with add_event; they
//    differ only in how they look an ancestor's result up (the callback).
//
// 2. Ancestor results (in, from PostgreSQL's claim): each claimed row of a step
//    with parents carries the results of its task's complete steps as one text,
//    `<idx>:<length>:<result>` repeated in index order, with no separator
//    (e.g. `0:4:true2:7:{"a":1}`). `length` counts the bytes of `result`
//    (octet_length), so a result may hold any character, colons included. The
//    claim statement builds it (TK_CLAIM_DEPS, store/postgres/queries.hpp);
//    ancestor_result() below reads one entry out of it. (The SQLite and memory
//    stores read results row by row and need no encoding.)
//
// 3. Finished tasks (between processes, over PostgreSQL's NOTIFY): the payload
//    on channel "<schema>.done" is `<task id>:<state>` pairs separated by single
//    spaces (`12:complete 13:error`), kept under 8,000 bytes per notification;
//    on "<schema>.ready" the payload is the namespace given ready work (empty:
//    some namespace). append_finished() writes a pair, parse_finished() reads
//    a payload (unknown items are skipped).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/store.hpp"

namespace tasker::core {

/// The result of step `index` in an ancestor-results text (encoding 2);
/// empty when it has none.
std::string_view ancestor_result(std::string_view results, int index);

/// Appends `id:state` to a finished-tasks payload (encoding 3).
void append_finished(std::string& payload, std::int64_t task_id, task_state state);

/// Adds the tasks of a finished-tasks payload (encoding 3) to out.finished.
void parse_finished(std::string_view payload, effects& out);

}  // namespace tasker::core
