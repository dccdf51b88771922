// Small JSON helpers for the hot path: a strict validator that builds no
// document, and string escaping for the JSON the core writes itself.
#pragma once

#include <string>
#include <string_view>

namespace tasker::core {

/// Returns an empty string when `text` is one valid JSON value (RFC 8259,
/// UTF-8 checked, surrounding white space allowed), else a message saying
/// where it breaks. More than 512 nested arrays/objects are rejected.
std::string json_error(std::string_view text);

/// True when `text` is a JSON object (valid JSON whose first token is '{').
bool json_is_object(std::string_view text);

/// Appends `s` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view s);

/// Checks `text` (named `what` in messages) is valid JSON within `max_bytes`;
/// throws core_error with TK_TOO_LARGE or TK_MALFORMED_JSON.
void require_json(std::string_view text, std::size_t max_bytes, const char* what);

}  // namespace tasker::core
