// Internal error type of the core. Thrown inside the core only; the C ABI
// shells in core.cpp turn it into a tk_status and a message.
#pragma once

#include <stdexcept>
#include <string>

#include <tasker/core.h>

namespace tasker::core {

/// An error with a tk_status code; never crosses the C ABI.
class core_error : public std::runtime_error {
public:
  core_error(tk_status code, const std::string& message)
    : std::runtime_error(message), code_(code) {}
  tk_status code() const noexcept { return code_; }

private:
  tk_status code_;
};

[[noreturn]] inline void fail(tk_status code, const std::string& message) {
  throw core_error(code, message);
}

}  // namespace tasker::core
