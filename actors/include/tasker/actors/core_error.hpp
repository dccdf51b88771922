// The core's statuses as a CAF error-code enum, so a failed core call
// travels through CAF as a caf::error (category "tk_core") and the caller
// decides by its code, never by its text.
#pragma once

#include <cstdint>
#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <tasker/core.h>

namespace tasker::actors {

/// A tk_status other than TK_OK, as the code of a caf::error.
enum class core_errc : std::uint8_t {
  invalid_argument = TK_INVALID_ARGUMENT,  ///< a null pointer, an empty name, a bad value
  malformed_json = TK_MALFORMED_JSON,      ///< a JSON input does not parse
  validation = TK_VALIDATION,              ///< the input parses but breaks a rule
  not_found = TK_NOT_FOUND,                ///< unknown task, step, pipeline or token
  conflict = TK_CONFLICT,                  ///< the object is not in a state that allows this
  too_large = TK_TOO_LARGE,                ///< an input exceeds the configured size cap
  store_error = TK_STORE_ERROR,            ///< the store failed (I/O, lock timeout…)
  unsupported = TK_UNSUPPORTED,            ///< unknown store URL scheme or option; or refused now
  internal = TK_INTERNAL,                  ///< a bug or an out-of-memory condition in the core
  stale = TK_STALE,                        ///< a fencing token that is no longer current
  duplicate = TK_DUPLICATE,                ///< this claim was already completed
};

/// The tk_status name of `e` (e.g. "not_found"), for CAF's error rendering.
std::string to_string(core_errc e);

/// An error carrying a failed core call's status and message (the error's
/// context is the message, one string).
caf::error core_error(const tk_error& err);
caf::error core_error(tk_status status, std::string message);

/// The tk_status a core_error carries; TK_OK for any other error (a timeout,
/// a dead actor...).
tk_status core_status(const caf::error& e);

}  // namespace tasker::actors

CAF_ERROR_CODE_ENUM(tasker::actors::core_errc, "tk_core")
