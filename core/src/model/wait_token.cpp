#include "model/wait_token.hpp"

#include <sys/random.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "abi/error.hpp"
#include <tasker/core.h>

namespace tasker::core {

namespace {

constexpr std::uint64_t rotl(std::uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

struct sip_state {
  std::uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }
};

std::uint64_t load_le(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i)
    v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

constexpr char hex_digits[] = "0123456789abcdef";

void append_hex64(std::string& out, std::uint64_t v) {
  for (int shift = 60; shift >= 0; shift -= 4)
    out.push_back(hex_digits[(v >> shift) & 0xf]);
}

bool parse_hex64(std::string_view s, std::uint64_t& out) {
  if (s.size() != 16)
    return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc{} && end == s.data() + s.size();
}

void tag(const wait_key& key, std::int64_t step_id, std::int64_t seq, std::uint64_t out[2]) {
  unsigned char msg[16];
  for (int i = 0; i < 8; ++i) {
    msg[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(step_id) >> (8 * i));
    msg[8 + i] = static_cast<unsigned char>(static_cast<std::uint64_t>(seq) >> (8 * i));
  }
  out[0] = siphash24(key.k[0], key.k[1], msg, sizeof msg);
  out[1] = siphash24(key.k[2], key.k[3], msg, sizeof msg);
}

}  // namespace

std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, const unsigned char* data,
                        std::size_t len) {
  sip_state s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
              k1 ^ 0x7465646279746573ULL};
  const std::size_t whole = len - len % 8;
  for (std::size_t i = 0; i < whole; i += 8) {
    const auto m = load_le(data + i, 8);
    s.v3 ^= m;
    s.round();
    s.round();
    s.v0 ^= m;
  }
  const auto last = (static_cast<std::uint64_t>(len & 0xff) << 56) | load_le(data + whole, len % 8);
  s.v3 ^= last;
  s.round();
  s.round();
  s.v0 ^= last;
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i)
    s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

wait_key wait_key::random() {
  wait_key key;
  auto* p = reinterpret_cast<unsigned char*>(key.k);
  std::size_t got = 0;
  while (got < sizeof key.k) {
    auto n = getrandom(p + got, sizeof key.k - got, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      fail(TK_INTERNAL, std::string("getrandom failed: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  return key;
}

bool wait_key::from_hex(std::string_view hex, wait_key& out) {
  if (hex.size() != 64)
    return false;
  for (int i = 0; i < 4; ++i)
    if (!parse_hex64(hex.substr(static_cast<std::size_t>(i) * 16, 16), out.k[i]))
      return false;
  return true;
}

std::string wait_key::to_hex() const {
  std::string out;
  for (auto v : k)
    append_hex64(out, v);
  return out;
}

void append_wait_token(std::string& out, const wait_key& key, std::int64_t step_id,
                       std::int64_t seq) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, step_id);
  out.append(buf, r.ptr);
  out.push_back('-');
  r = std::to_chars(buf, buf + sizeof buf, seq);
  out.append(buf, r.ptr);
  out.push_back('-');
  std::uint64_t t[2];
  tag(key, step_id, seq, t);
  append_hex64(out, t[0]);
  append_hex64(out, t[1]);
}

std::string make_wait_token(const wait_key& key, std::int64_t step_id, std::int64_t seq) {
  std::string out;
  append_wait_token(out, key, step_id, seq);
  return out;
}

bool check_wait_token(const wait_key& key, std::string_view token, std::int64_t& step_id,
                      std::int64_t& seq) {
  auto d1 = token.find('-');
  if (d1 == std::string_view::npos)
    return false;
  auto d2 = token.find('-', d1 + 1);
  if (d2 == std::string_view::npos || token.size() - d2 - 1 != 32)
    return false;
  auto number = [](std::string_view s, std::int64_t& v) {
    if (s.empty() || s.size() > 19 || s[0] == '-' || s[0] == '+')
      return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc{} && end == s.data() + s.size() && v > 0;
  };
  std::uint64_t got[2];
  if (!number(token.substr(0, d1), step_id) || !number(token.substr(d1 + 1, d2 - d1 - 1), seq)
      || !parse_hex64(token.substr(d2 + 1, 16), got[0])
      || !parse_hex64(token.substr(d2 + 17, 16), got[1]))
    return false;
  std::uint64_t want[2];
  tag(key, step_id, seq, want);
  // Constant time: no early exit on the first differing word.
  return ((got[0] ^ want[0]) | (got[1] ^ want[1])) == 0;
}

}  // namespace tasker::core
