// The file actor's messages: a zero-copy view of a file's bytes, the error
// value every file operation may return, and the two replies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/sec.hpp>

namespace tasker {

/// Why a file operation failed.
enum class file_errc : std::uint8_t {
  none,               ///< no error
  not_found,          ///< the file (or, for a write, its directory) does not exist
  permission_denied,  ///< the OS refused access (EACCES, EPERM, EROFS)
  outside_roots,      ///< the path leaves the configured roots (`..`, absolute, symlink)
  too_large,          ///< over the configured read or write cap; nothing was truncated
  not_a_file,         ///< a directory or another kind of file that cannot be read or replaced
  invalid_path,       ///< empty, contains a NUL byte, or names no file (e.g. ends in `/`)
  timed_out,          ///< a pipe gave no end of data in time, or the actor did not answer
  io_error,           ///< any other failure of a system call (the message has errno's text)
};

/// The name of a file_errc, e.g. "outside_roots".
inline const char* to_string(file_errc code) {
  switch (code) {
    case file_errc::none: return "none";
    case file_errc::not_found: return "not_found";
    case file_errc::permission_denied: return "permission_denied";
    case file_errc::outside_roots: return "outside_roots";
    case file_errc::too_large: return "too_large";
    case file_errc::not_a_file: return "not_a_file";
    case file_errc::invalid_path: return "invalid_path";
    case file_errc::timed_out: return "timed_out";
    case file_errc::io_error: return "io_error";
  }
  return "unknown";
}

/// A failed file operation, as a value (never an exception across actors).
struct file_error {
  file_errc code = file_errc::none;
  std::string message;  ///< names the path (and, for outside_roots, the roots)

  /// True when this is an error.
  explicit operator bool() const { return code != file_errc::none; }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_error& x) {
  return f(caf::meta::type_name("tasker::file_error"), x.code, x.message);
}

/// A shared, read-only view of a file's bytes. For regular files the bytes
/// are an `mmap` of the file (no copy); for pipes, /proc files and empty
/// files they are a buffer read once. Copies share the bytes; the mapping (or
/// buffer) is released when the last copy goes. A view is a local handle: it
/// cannot travel to another process.
///
/// A mapped file that another program truncates in place while a view is
/// alive makes reads past the new end fault (SIGBUS); the file actor itself
/// only replaces files by rename, which never affects existing views.
class file_view {
public:
  file_view() = default;
  /// A view of `size` bytes at `data`, kept valid by `owner`.
  file_view(std::shared_ptr<const void> owner, const char* data, std::size_t size, bool mapped)
    : owner_(std::move(owner)), data_(data), size_(size), mapped_(mapped) {}

  const char* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const char* begin() const { return data_; }
  const char* end() const { return data_ + size_; }
  std::string_view view() const { return {data_ == nullptr ? "" : data_, size_}; }
  /// A copy of the bytes (the one place a view copies).
  std::string str() const { return std::string(view()); }
  /// True when the bytes are a memory mapping of the file.
  bool mapped() const { return mapped_; }
  /// Copies of this view alive (the file actor's cache holds none).
  long use_count() const { return owner_.use_count(); }

private:
  std::shared_ptr<const void> owner_;
  const char* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
};

/// A file_view shares memory of this process, so it refuses to serialize
/// (CAF would need that only to send it to another node); printing it (CAF's
/// to_string, e.g. in logs) shows its size.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_view& x) {
  if constexpr (std::is_same_v<typename Inspector::result_type, caf::error>) {
    return caf::make_error(caf::sec::invalid_argument,
                           std::string("tasker::file_view is local to its process and cannot "
                                       "be serialized; send the bytes as a std::string"));
  } else {
    auto size = static_cast<std::uint64_t>(x.size());
    auto mapped = x.mapped();
    return f(caf::meta::type_name("tasker::file_view"), size, mapped);
  }
}

/// The reply to a read: a view, or an error (then the view is empty).
struct file_read_result {
  file_error error;
  file_view view;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_read_result& x) {
  return f(caf::meta::type_name("tasker::file_read_result"), x.error, x.view);
}

/// The reply to a write: the bytes now in the file, or an error (then the
/// file is unchanged).
struct file_write_result {
  file_error error;
  std::uint64_t size = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, file_write_result& x) {
  return f(caf::meta::type_name("tasker::file_write_result"), x.error, x.size);
}

}  // namespace tasker
