// Every message type and atom of tasker, in one CAF type-ID block.
// (CAF 0.17.6 accepts the block as a forward-compatible shim: the atoms are
// atom_constants and nothing needs initialising at start-up.)
#pragma once

#include <caf/atom.hpp>
#include <caf/type_id.hpp>

#include <cstdint>
#include <vector>

#include <tasker/messages/file_messages.hpp>
#include <tasker/messages/http_messages.hpp>
#include <tasker/messages/process_messages.hpp>
#include <tasker/messages/step_event.hpp>
#include <tasker/messages/step_result.hpp>
#include <tasker/messages/task_request.hpp>

CAF_BEGIN_TYPE_ID_BLOCK(tasker, caf::first_custom_type_id)

CAF_ADD_TYPE_ID(tasker, (tasker::step_event))
CAF_ADD_TYPE_ID(tasker, (tasker::step_result))
CAF_ADD_TYPE_ID(tasker, (tasker::task_request))
CAF_ADD_TYPE_ID(tasker, (std::vector<tasker::task_request>))
CAF_ADD_TYPE_ID(tasker, (std::vector<std::int64_t>))

/// The core may have work: claim up to free capacity.
CAF_ADD_ATOM(tasker, tasker, wake_atom, "wake")
/// Results are waiting: complete them in one batch, then claim.
CAF_ADD_ATOM(tasker, tasker, flush_atom, "flush")
/// The one timer for the core's next due event (carries a generation).
CAF_ADD_ATOM(tasker, tasker, tick_atom, "tick")
/// The earliest handler deadline of the running steps has come.
CAF_ADD_ATOM(tasker, tasker, deadline_atom, "deadline")
/// The slow safety-net poll.
CAF_ADD_ATOM(tasker, tasker, fallback_atom, "fallback")
/// Extend the leases of steps still running.
CAF_ADD_ATOM(tasker, tasker, heartbeat_atom, "heartbeat")
/// Cancel a running process by request id (process actor).
CAF_ADD_ATOM(tasker, tasker, cancel_atom, "cancel")
/// Reply once no step is running, queued or due.
CAF_ADD_ATOM(tasker, tasker, idle_atom, "idle")
/// Stop claiming, finish what runs (up to a deadline), reply, then stop.
CAF_ADD_ATOM(tasker, tasker, drain_atom, "drain")

// The file and process actors (new IDs go here, at the end, so that the
// IDs above never move).
CAF_ADD_TYPE_ID(tasker, (tasker::file_error))
CAF_ADD_TYPE_ID(tasker, (tasker::file_view))
CAF_ADD_TYPE_ID(tasker, (tasker::file_read_result))
CAF_ADD_TYPE_ID(tasker, (tasker::file_write_result))
CAF_ADD_TYPE_ID(tasker, (tasker::process_request))
CAF_ADD_TYPE_ID(tasker, (tasker::process_result))

/// Read a file (file actor): a path in, a file_read_result out.
CAF_ADD_ATOM(tasker, tasker, read_atom, "read")
/// Replace a file atomically (file actor): path and bytes in, a file_write_result out.
CAF_ADD_ATOM(tasker, tasker, write_atom, "write")
/// Run a program (process actor): a process_request in, a process_result out.
CAF_ADD_ATOM(tasker, tasker, run_atom, "run")
/// A run ended (the process actor's I/O thread to the actor).
CAF_ADD_ATOM(tasker, tasker, done_atom, "done")

// The HTTP actor (issue 4).
CAF_ADD_TYPE_ID(tasker, (tasker::http_call))

/// Readiness probe: the poller makes one cheap store call and answers true or an error.
CAF_ADD_ATOM(tasker, tasker, ping_atom, "ping")

CAF_END_TYPE_ID_BLOCK(tasker)
