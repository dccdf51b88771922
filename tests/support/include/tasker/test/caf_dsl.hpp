// CAF's test DSL (<caf/test/dsl.hpp>: expect, allow, disallow, inject over
// CAF's test coordinator) in doctest suites, a failed clause failing the
// doctest case. Include it last (it defines lowercase macros) in a suite whose
// fixture has a `caf::scheduler::test_coordinator& sched`:
//
//   expect((tasker::flush_atom), from(poller).to(poller));   // runs that message
//   expect((tasker::step_event), from(poller).to(h).with(tasker::test::where(
//       "attempt 2", [](const tasker::step_event& e) { return e.attempt == 2; })));
//   disallow((tasker::step_event), from(poller).to(h));      // runs nothing
//
// The DSL is written for CAF's own test engine and reports through the
// CAF_CHECK/CAF_REQUIRE/CAF_FAIL/CAF_MESSAGE macros of <caf/test/unit_test.hpp>.
// This header includes that one (for the declarations the DSL names; nothing
// of CAF's engine is linked or run), points those macros at doctest, then
// includes the DSL. And it re-defines the DSL's own macros, because the DSL
// checks in destructors: a failed expect throws (doctest's REQUIRE does, like
// CAF's) out of a noexcept destructor, which is std::terminate and ends the
// whole test binary. Here each clause is checked by a call after its
// statement, so a failure ends only its test case; the clauses themselves
// (from/to/with, the matching) are CAF's. (allow's own macro also evaluated
// its clause twice, once more in the destructor: up to two messages ran.)
#pragma once

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <doctest/doctest.h>

#include <caf/deep_to_string.hpp>
#include <caf/test/unit_test.hpp>

namespace tasker::test::caf_dsl_detail {

/// Collects a CAF test message ("a" << x << …) as text: strings as they are,
/// anything else as CAF prints it (deep_to_string: message contents, actor
/// addresses, inspectable types).
struct text {
  std::string str;
  template <class T>
  text& operator<<(const T& x) {
    if constexpr (std::is_convertible_v<const T&, std::string_view>)
      str += std::string_view{x};
    else
      str += caf::deep_to_string(x);
    return *this;
  }
};

}  // namespace tasker::test::caf_dsl_detail

// CAF's check macros, onto doctest. CAF_CHECK_FUNC and CAF_REQUIRE_FUNC carry
// the whole CAF_CHECK_EQUAL / CAF_REQUIRE_LESS… family.
#undef CAF_CHECK
#undef CAF_CHECK_FAIL
#undef CAF_CHECK_FUNC
#undef CAF_REQUIRE
#undef CAF_REQUIRE_FUNC
#undef CAF_FAIL
#undef CAF_ERROR
#undef CAF_MESSAGE

#define CAF_CHECK(...) DOCTEST_CHECK(__VA_ARGS__)
#define CAF_CHECK_FAIL(...) DOCTEST_CHECK_FALSE(__VA_ARGS__)
#define CAF_REQUIRE(...) DOCTEST_REQUIRE(__VA_ARGS__)
#define CAF_CHECK_FUNC(func, x_expr, y_expr)                                                       \
  do {                                                                                             \
    const auto& tasker_dsl_x = x_expr;                                                             \
    const auto& tasker_dsl_y = y_expr;                                                             \
    DOCTEST_CHECK_MESSAGE(func{}(tasker_dsl_x, tasker_dsl_y),                                      \
                          (::tasker::test::caf_dsl_detail::text{}                                  \
                           << #x_expr " = " << tasker_dsl_x << ", " #y_expr " = " << tasker_dsl_y  \
                           << " (" #func ")")                                                      \
                              .str);                                                               \
  } while (false)
#define CAF_REQUIRE_FUNC(func, x_expr, y_expr)                                                     \
  do {                                                                                             \
    const auto& tasker_dsl_x = x_expr;                                                             \
    const auto& tasker_dsl_y = y_expr;                                                             \
    DOCTEST_REQUIRE_MESSAGE(func{}(tasker_dsl_x, tasker_dsl_y),                                    \
                            (::tasker::test::caf_dsl_detail::text{}                                \
                             << #x_expr " = " << tasker_dsl_x << ", " #y_expr " = "                \
                             << tasker_dsl_y << " (" #func ")")                                    \
                                .str);                                                             \
  } while (false)
#define CAF_FAIL(msg) DOCTEST_FAIL((::tasker::test::caf_dsl_detail::text{} << msg).str)
#define CAF_ERROR(msg) DOCTEST_FAIL_CHECK((::tasker::test::caf_dsl_detail::text{} << msg).str)
// The DSL says what each clause is about to check: context for a failure.
#define CAF_MESSAGE(msg) DOCTEST_INFO((::tasker::test::caf_dsl_detail::text{} << msg).str)

#include <caf/test/dsl.hpp>

namespace tasker::test {

/// A `with(…)` argument that accepts a message element when `pred` holds for
/// it; `what` names the condition in a failure.
template <class Pred>
struct element_where {
  std::string what;
  Pred pred;
};

template <class Pred>
element_where<Pred> where(std::string what, Pred pred) {
  return {std::move(what), std::move(pred)};
}

template <class T, class Pred>
bool operator==(const T& x, const element_where<Pred>& m) {
  return m.pred(x);
}

template <class Pred>
std::string to_string(const element_where<Pred>& m) {
  return "an element where " + m.what;
}

}  // namespace tasker::test

namespace tasker::test::caf_dsl_detail {

/// "#5 tasker.poller": an actor's id and name.
inline std::string describe(const caf::abstract_actor* a) {
  auto* m = dynamic_cast<const caf::monitorable_actor*>(a);
  return "#" + std::to_string(a->id()) + " " + (m ? m->name() : "actor");
}

/// What waits for `receiver`, for the context of a failed clause.
inline std::string next_message_of(caf::abstract_actor* receiver) {
  if (receiver == nullptr)
    return "the receiver has no message waiting";
  auto* e = receiver->peek_at_next_mailbox_element();
  if (e == nullptr)
    return describe(receiver) + " has no message waiting";
  return "next for " + describe(receiver) + ": " + caf::deep_to_string(e->content()) + " from "
         + (e->sender ? describe(e->sender->get()) : std::string("nobody (anonymous)"));
}

/// CAF's expect clause, checked by eval() instead of by its destructor.
template <class... Ts>
class expect_clause : public ::expect_clause<Ts...> {
public:
  using ::expect_clause<Ts...>::expect_clause;
  expect_clause(const expect_clause&) = delete;
  expect_clause& operator=(const expect_clause&) = delete;
  ~expect_clause() { this->peek_ = nullptr; }  // already checked (or failed before)
  std::string next_message() const { return next_message_of(this->dest_); }
  /// The receiver's next message matches (else the case fails): it runs.
  void eval() {
    auto peek = std::exchange(this->peek_, nullptr);
    DOCTEST_REQUIRE_MESSAGE(this->dest_ != nullptr, "expect(…) without to(…)");
    peek();
    this->run_once();
  }
};

/// CAF's allow clause, evaluated once.
template <class... Ts>
class allow_clause : public ::allow_clause<Ts...> {
public:
  using ::allow_clause<Ts...>::allow_clause;
  allow_clause(const allow_clause&) = delete;
  allow_clause& operator=(const allow_clause&) = delete;
  ~allow_clause() { this->peek_ = nullptr; }
  /// Runs the receiver's next message if it matches; true if it did.
  bool eval() {
    // (with(…) makes CAF's check read the receiver even when it has no message.)
    return this->dest_ != nullptr && ::allow_clause<Ts...>::eval();
  }
};

/// CAF's disallow clause, checked by eval() instead of by its destructor.
template <class... Ts>
class disallow_clause : public ::disallow_clause<Ts...> {
public:
  disallow_clause() = default;
  disallow_clause(const disallow_clause&) = delete;
  disallow_clause& operator=(const disallow_clause&) = delete;
  ~disallow_clause() { this->check_ = nullptr; }
  /// Fails the case if the receiver's next message matches; runs nothing.
  void eval() {
    auto check = std::exchange(this->check_, nullptr);
    DOCTEST_REQUIRE_MESSAGE(this->dest_ != nullptr, "disallow(…) without to(…)");
    check();
  }
};

}  // namespace tasker::test::caf_dsl_detail

#undef expect
#undef allow
#undef disallow

/// The next message of the receiver in `fields` (`from(a).to(b)`, optionally
/// `.with(x, _, …)`) is of `types` (and matches): it runs, else the case fails.
#define expect(types, fields)                                                                      \
  do {                                                                                             \
    ::tasker::test::caf_dsl_detail::expect_clause<CAF_EXPAND(CAF_DSL_LIST types)>                  \
        tasker_dsl_clause{sched};                                                                  \
    DOCTEST_INFO("expect" #types "." #fields " (line " << __LINE__ << ")");                        \
    DOCTEST_INFO(tasker_dsl_clause.next_message());                                                \
    tasker_dsl_clause.fields;                                                                      \
    tasker_dsl_clause.eval();                                                                      \
  } while (false)

/// Runs the receiver's next message if it is of `types` (and matches);
/// returns whether it did.
#define allow(types, fields)                                                                       \
  ([&] {                                                                                           \
    DOCTEST_INFO("allow" #types "." #fields " (line " << __LINE__ << ")");                         \
    ::tasker::test::caf_dsl_detail::allow_clause<CAF_EXPAND(CAF_DSL_LIST types)>                   \
        tasker_dsl_clause{sched};                                                                  \
    tasker_dsl_clause.fields;                                                                      \
    return tasker_dsl_clause.eval();                                                               \
  })()

/// Fails the case if the receiver's next message is of `types` (and matches).
#define disallow(types, fields)                                                                    \
  do {                                                                                             \
    ::tasker::test::caf_dsl_detail::disallow_clause<CAF_EXPAND(CAF_DSL_LIST types)>                \
        tasker_dsl_clause;                                                                         \
    DOCTEST_INFO("disallow" #types "." #fields " (line " << __LINE__ << ")");                      \
    tasker_dsl_clause.fields;                                                                      \
    tasker_dsl_clause.eval();                                                                      \
  } while (false)
