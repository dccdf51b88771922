// A fresh directory for a test's or a benchmark's files.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace tasker::test {

/// A fresh directory (mkdtemp, its canonical path), removed with everything in it on
/// destruction.
/// Throws std::runtime_error when it cannot be made: a failed start-up.
class temp_dir {
public:
  /// `prefix` names it: "tasker-test" gives $TMPDIR/tasker-test-XXXXXX.
  explicit temp_dir(std::string_view prefix = "tasker-test") {
    auto pattern = (std::filesystem::temp_directory_path() / prefix).string() + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("cannot create a temporary directory " + pattern);
    path_ = std::filesystem::canonical(pattern);  // as the code under test will see it
  }
  ~temp_dir() {
    std::error_code ec;
    // A test may have taken its own permissions away (to make writes fail).
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  /// The path of `name` inside it.
  std::string file(std::string_view name) const { return (path_ / name).string(); }
  /// Writes `text` to the file `name` inside it.
  void write(std::string_view name, std::string_view text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
  }

private:
  std::filesystem::path path_;
};

}  // namespace tasker::test
