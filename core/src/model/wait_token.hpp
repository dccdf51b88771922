// Wait tokens (TK_RESULT_WAIT, tk_signal): "<step id>-<claim seq>-<tag>",
// where the tag is a keyed hash (two SipHash-2-4 runs, 128 bits) of the step
// id and the claim's fencing token under a secret kept in the store. Every
// process sharing the store can thus mint and check them without a lookup
// table, and nobody without the secret can forge one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tasker::core {

/// The secret behind the tokens: 32 random bytes.
struct wait_key {
  std::uint64_t k[4] = {0, 0, 0, 0};

  /// A fresh key from the kernel's random source.
  static wait_key random();
  /// Reads the 64 hex digits that to_hex() writes; false if malformed.
  static bool from_hex(std::string_view hex, wait_key& out);
  std::string to_hex() const;
};

/// SipHash-2-4 with a 64-bit result.
std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, const unsigned char* data,
                        std::size_t len);

/// The token of claim `seq` of step `step_id`.
std::string make_wait_token(const wait_key& key, std::int64_t step_id, std::int64_t seq);

/// Appends the same token to `out` (no allocation when `out` has room).
void append_wait_token(std::string& out, const wait_key& key, std::int64_t step_id,
                       std::int64_t seq);

/// Parses and checks a token: true, with the step id and claim seq, when it
/// is well-formed and its tag matches.
bool check_wait_token(const wait_key& key, std::string_view token, std::int64_t& step_id,
                      std::int64_t& seq);

}  // namespace tasker::core
