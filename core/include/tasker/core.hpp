// tasker/core.hpp — the one C++ owner of a tk_core (header-only, over core.h).
#pragma once

#include <utility>

#include <tasker/core.h>

namespace tasker {

/// Owns a `tk_core*` and closes it (tk_close) when destroyed; move-only.
///
/// Opening reports failure as a value, like the C ABI under it: `open` returns
/// an empty handle and fills `err`; it never throws. Close a core's workers
/// before the handle goes.
class core_handle {
public:
  /// An empty handle (owns nothing).
  core_handle() noexcept = default;
  /// Takes ownership of `core` (may be null).
  explicit core_handle(tk_core* core) noexcept : core_(core) {}
  ~core_handle() { reset(); }

  core_handle(core_handle&& other) noexcept : core_(other.release()) {}
  core_handle& operator=(core_handle&& other) noexcept {
    if (this != &other)
      reset(other.release());
    return *this;
  }
  core_handle(const core_handle&) = delete;
  core_handle& operator=(const core_handle&) = delete;

  /// Opens a core (see tk_open); empty on failure, with `err` filled.
  static core_handle open(const char* url, const char* options_json, tk_error& err) noexcept {
    return core_handle{tk_open(url, options_json, &err)};
  }
  /// Opens a core with default options; empty on failure, with `err` filled.
  static core_handle open(const char* url, tk_error& err) noexcept {
    return open(url, nullptr, err);
  }

  /// The core, or null when empty; the handle keeps owning it.
  tk_core* get() const noexcept { return core_; }
  /// Gives the core up without closing it.
  [[nodiscard]] tk_core* release() noexcept { return std::exchange(core_, nullptr); }
  /// Closes the core it owns (if any) and takes `core` instead.
  void reset(tk_core* core = nullptr) noexcept { tk_close(std::exchange(core_, core)); }

  explicit operator bool() const noexcept { return core_ != nullptr; }
  /// Lets a handle be passed straight to the tk_* functions.
  operator tk_core*() const noexcept { return core_; }

private:
  tk_core* core_ = nullptr;
};

}  // namespace tasker
