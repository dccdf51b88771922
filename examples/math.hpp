// Shared arithmetic of the math examples (linear, diamond, tree, mixed DAG):
// a small exact unsigned big integer and the `square` function handler.
//
// Overflow rule: values are kept exact. A step's result is {"value": V}; V is
// a JSON integer while it fits in int64 and a decimal string beyond that. The
// tree and mixed DAG workflows reach 6^64 for n = 6, far past 64 bits, so we
// carry exact decimal strings instead of capping or wrapping. Handlers accept
// both forms as input.
//
// The `square` convention: the handler squares the product of the `value`
// fields of the results of the steps named in its config `sources` (a list);
// `previous: step` (the spelling of hello.cpp and templates/linear_math.yaml)
// names a single source. With no source it squares the task input's
// `even_number`.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "check.hpp"
#include <tasker/runtime/client.hpp>
#include <tasker/runtime/pipeline.hpp>
#include <tasker/runtime/step_context.hpp>
#include <tasker/runtime/step_result.hpp>

namespace examples {

/// An exact non-negative integer of any size: multiplication and decimal text.
class big_uint {
public:
  /// Zero.
  big_uint() = default;
  big_uint(std::uint64_t v) {  // NOLINT: implicit, like a built-in integer
    for (; v > 0; v /= base)
      limbs_.push_back(static_cast<std::uint32_t>(v % base));
  }

  /// Parses a string of decimal digits; throws tasker::step_input_error when
  /// it is empty or holds anything else.
  static big_uint from_decimal(std::string_view text) {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos)
      throw tasker::step_input_error("\"" + std::string(text) + "\" is not a decimal number");
    big_uint out;
    for (auto end = text.size(); end > 0;) {
      const auto begin = end >= digits ? end - digits : 0;
      out.limbs_.push_back(
          static_cast<std::uint32_t>(std::stoul(std::string(text.substr(begin, end - begin)))));
      end = begin;
    }
    out.trim();
    return out;
  }

  big_uint operator*(const big_uint& other) const {
    if (limbs_.empty() || other.limbs_.empty())
      return {};
    std::vector<std::uint64_t> acc(limbs_.size() + other.limbs_.size() + 1, 0);
    for (std::size_t i = 0; i < limbs_.size(); ++i) {
      std::uint64_t carry = 0;
      for (std::size_t j = 0; j < other.limbs_.size(); ++j) {
        const auto cur = acc[i + j] + std::uint64_t{limbs_[i]} * other.limbs_[j] + carry;
        acc[i + j] = cur % base;
        carry = cur / base;
      }
      for (auto k = i + other.limbs_.size(); carry > 0; ++k) {
        const auto cur = acc[k] + carry;
        acc[k] = cur % base;
        carry = cur / base;
      }
    }
    big_uint out;
    out.limbs_.assign(acc.begin(), acc.end());
    out.trim();
    return out;
  }
  big_uint& operator*=(const big_uint& other) { return *this = *this * other; }

  bool operator==(const big_uint& other) const { return limbs_ == other.limbs_; }
  bool operator!=(const big_uint& other) const { return limbs_ != other.limbs_; }

  /// True when the value fits in std::int64_t.
  bool fits_int64() const {
    return limbs_.size() <= 3 && *this <= std::numeric_limits<std::int64_t>::max();
  }
  /// The value as std::int64_t; only when fits_int64().
  std::int64_t to_int64() const {
    std::uint64_t v = 0;
    for (auto it = limbs_.rbegin(); it != limbs_.rend(); ++it)
      v = v * base + *it;
    return static_cast<std::int64_t>(v);
  }

  /// Decimal digits, no sign, no leading zeros ("0" for zero).
  std::string to_string() const {
    if (limbs_.empty())
      return "0";
    std::string out = std::to_string(limbs_.back());
    for (auto it = limbs_.rbegin() + 1; it != limbs_.rend(); ++it) {
      const auto part = std::to_string(*it);
      out.append(digits - part.size(), '0').append(part);
    }
    return out;
  }

private:
  static constexpr std::uint32_t base = 1'000'000'000;  ///< one limb holds 9 decimal digits
  static constexpr std::size_t digits = 9;
  std::vector<std::uint32_t> limbs_;  ///< least significant first; empty: zero

  void trim() {
    while (!limbs_.empty() && limbs_.back() == 0)
      limbs_.pop_back();
  }
  bool operator<=(std::uint64_t v) const {
    const big_uint other{v};
    if (limbs_.size() != other.limbs_.size())
      return limbs_.size() < other.limbs_.size();
    for (auto i = limbs_.size(); i-- > 0;)
      if (limbs_[i] != other.limbs_[i])
        return limbs_[i] < other.limbs_[i];
    return true;
  }
};

/// `base` raised to `exponent`.
inline big_uint power(big_uint base, unsigned exponent) {
  big_uint out{1};
  for (; exponent > 0; exponent /= 2, base *= base)
    if (exponent % 2 == 1)
      out *= base;
  return out;
}

/// The JSON form of a value: an integer when it fits in int64, else a decimal string.
inline tasker::json value_json(const big_uint& v) {
  if (v.fits_int64())
    return v.to_int64();
  return v.to_string();
}

/// Reads a value in either JSON form; throws tasker::step_input_error for
/// anything else (null, negative, fractional…). `what` names it in the message.
inline big_uint parse_value(const tasker::json& v, const std::string& what) {
  if (v.is_number_unsigned())
    return big_uint{v.get<std::uint64_t>()};
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
    return big_uint{static_cast<std::uint64_t>(v.get<std::int64_t>())};
  if (v.is_string())
    return big_uint::from_decimal(v.get_ref<const std::string&>());
  throw tasker::step_input_error(what + " is " + v.dump()
                                 + ", not a non-negative integer or decimal string");
}

/// True when `v` is the JSON form of `expected` (an integer or a decimal string).
inline bool json_equals(const tasker::json& v, const big_uint& expected) {
  return v == value_json(expected);
}

/// The steps whose values `square` multiplies: config `sources` plus
/// `previous`, when given.
inline std::vector<std::string> square_sources(const tasker::step_context& ctx) {
  auto sources = ctx.config_or<std::vector<std::string>>("sources", {});
  if (auto previous = ctx.config_or("previous", ""); !previous.empty())
    sources.push_back(std::move(previous));
  return sources;
}

/// Options for a `square` step after `parents`: it depends on them and
/// squares the product of their values.
inline tasker::step_options squares(std::vector<std::string> parents) {
  tasker::step_options o;
  o.dependencies = parents;
  o.config = {{"sources", std::move(parents)}};
  return o;
}

/// The `square` handler: squares the product of the `value` fields of the
/// source steps' results, or the input's `even_number` when there are none.
inline tasker::step_result square(tasker::step_context& ctx) {
  const auto sources = square_sources(ctx);
  big_uint product{1};
  if (sources.empty())
    product = ctx.input<std::uint64_t>("even_number");
  for (const auto& source : sources)
    product *= parse_value(ctx.dependency_field(source, "value"), source + ".value");
  return tasker::success({{"value", value_json(product * product)}});
}

/// The `value` in the result of `step` of `task`; null when there is none.
inline tasker::json step_value(tasker::client& client, std::int64_t task, const std::string& step) {
  const auto result = client.result(task, step);
  return result.is_object() ? result.value("value", tasker::json()) : tasker::json();
}

/// Checks the `value` in each named step's result of `task` against the
/// expected value, printing every mismatch.
inline void check_values(checker& check, tasker::client& client, std::int64_t task,
                         const std::vector<std::pair<std::string, big_uint>>& expected) {
  for (const auto& [step, value] : expected)
    check.equal(step + ".value", step_value(client, task, step), value_json(value));
}

}  // namespace examples
