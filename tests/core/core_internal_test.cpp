// White-box tests of the core's pure parts: the JSON validator, the retry
// arithmetic, pipeline parsing and the stores' private text encodings. No
// store, no C ABI.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "abi/error.hpp"
#include "model/pipeline.hpp"
#include "model/retry.hpp"
#include "model/wait_token.hpp"
#include "store/encodings.hpp"
#include "util/json.hpp"

using namespace tasker::core;

namespace {

std::string nested(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

/// The code and message of the core_error `fn` throws (TK_OK if none).
template <class Fn>
std::pair<tk_status, std::string> error_of(Fn&& fn) {
  try {
    fn();
  } catch (const core_error& e) {
    return {e.code(), e.what()};
  }
  return {TK_OK, {}};
}

retry_policy policy(backoff_kind kind, millis base, millis cap, int max_attempts = 10,
                    double jitter = 0.0) {
  retry_policy p;
  p.backoff = kind;
  p.base_ms = base;
  p.cap_ms = cap;
  p.max_attempts = max_attempts;
  p.jitter = jitter;
  return p;
}

std::vector<std::string> names(const pipeline_def& p, const std::vector<int>& indexes) {
  std::vector<std::string> out;
  for (int i : indexes)
    out.push_back(p.steps.at(static_cast<std::size_t>(i)).name);
  return out;
}

}  // namespace

// ---- json_error -----------------------------------------------------------------

TEST_CASE("the JSON validator accepts valid documents" * doctest::timeout(10)) {
  const std::vector<std::string> valid{
      "{}",
      "[]",
      "0",
      "-0",
      "-12.5e+10",
      "1E-3",
      "true",
      "false",
      "null",
      "\"\"",
      " \t\r\n{\"a\" : [1, true, null, \"x\", {\"b\": -0.0}]}\n ",
      R"("escapes \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00")",
      "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",  // 2-, 3- and 4-byte UTF-8
      nested(512)};
  for (const auto& text : valid) {
    INFO("text: ", text.substr(0, 80));
    CHECK(json_error(text).empty());
  }
  CHECK(json_is_object(" {\"a\":1}"));
  CHECK_FALSE(json_is_object("[{}]"));
  CHECK_FALSE(json_is_object("{"));
}

TEST_CASE("the JSON validator rejects broken documents with a message" * doctest::timeout(10)) {
  const std::vector<std::string> invalid{"",
                                         "   ",
                                         "{",
                                         "}",
                                         "[1,]",
                                         "{\"a\":1,}",
                                         "{\"a\" 1}",
                                         "{1:2}",
                                         "{'a':1}",
                                         "01",
                                         "1.",
                                         ".5",
                                         "+1",
                                         "-",
                                         "1e",
                                         "0x10",
                                         "tru",
                                         "nul",
                                         "NaN",
                                         "Infinity",
                                         "\"unterminated",
                                         "\"bad escape \\x\"",
                                         "\"short unicode \\u12\"",
                                         std::string("\"control \x01 char\""),
                                         "\"tab\tinside\"",
                                         "\"\xff\"",
                                         "\"\xc0\xaf\"" /* overlong */,
                                         "\"\xed\xa0\x80\"" /* UTF-16 surrogate in UTF-8 */,
                                         "\"\xe2\x82\"" /* truncated */,
                                         "\"\xf4\x90\x80\x80\"" /* above U+10FFFF */,
                                         "\"\x80\"" /* lone continuation */,
                                         std::string("{}\0", 3),
                                         "{} x",
                                         "1 2",
                                         "{}}",
                                         "[]]",
                                         "[] []",
                                         nested(513)};
  for (const auto& text : invalid) {
    INFO("text: ", text.substr(0, 80));
    CHECK_FALSE(json_error(text).empty());
  }
}

TEST_CASE("the JSON validator survives very deep nesting" * doctest::timeout(10)) {
  CHECK_FALSE(json_error(std::string(1'000'000, '[')).empty());
  CHECK_FALSE(json_error(nested(200'000)).empty());
  std::string objects;
  for (int i = 0; i < 100'000; ++i)
    objects += "{\"a\":";
  CHECK_FALSE(json_error(objects).empty());
}

TEST_CASE("require_json enforces the size cap before parsing" * doctest::timeout(10)) {
  CHECK(error_of([] { require_json("{\"a\":1}", 100, "context"); }).first == TK_OK);
  auto [too_large, message] = error_of([] { require_json("[1,2,3]", 3, "context"); });
  CHECK(too_large == TK_TOO_LARGE);
  CHECK(message.find("context") != std::string::npos);
  CHECK(error_of([] { require_json("[1,", 100, "result"); }).first == TK_MALFORMED_JSON);
}

// ---- retry arithmetic ----------------------------------------------------------------

TEST_CASE("exponential backoff doubles from the base and stops at the cap" * doctest::timeout(10)) {
  const auto p = policy(backoff_kind::exponential, 1000, 30000);
  CHECK(backoff_delay(p, 1) == 1000);
  CHECK(backoff_delay(p, 2) == 2000);
  CHECK(backoff_delay(p, 3) == 4000);
  CHECK(backoff_delay(p, 5) == 16000);
  CHECK(backoff_delay(p, 6) == 30000);
  CHECK(backoff_delay(p, 100) == 30000);
  CHECK(backoff_delay(p, 1'000'000) == 30000);
}

TEST_CASE("linear backoff grows by the base and stops at the cap" * doctest::timeout(10)) {
  const auto p = policy(backoff_kind::linear, 700, 3000);
  CHECK(backoff_delay(p, 1) == 700);
  CHECK(backoff_delay(p, 2) == 1400);
  CHECK(backoff_delay(p, 4) == 2800);
  CHECK(backoff_delay(p, 5) == 3000);
}

TEST_CASE("fibonacci backoff multiplies the base by fib(n) and stops at the cap"
          * doctest::timeout(10)) {
  const auto p = policy(backoff_kind::fibonacci, 500, 10000);
  const millis expected[] = {500, 500, 1000, 1500, 2500, 4000, 6500, 10000, 10000};
  for (int n = 1; n <= 9; ++n) {
    INFO("after failed attempt ", n);
    CHECK(backoff_delay(p, n) == expected[n - 1]);
  }
  CHECK(backoff_delay(p, 0) == 500);  // counted as the first
  CHECK(backoff_delay(p, 1'000'000) == 10000);
  const auto uncapped = policy(backoff_kind::fibonacci, 1, 7 * 86'400'000LL);
  CHECK(backoff_delay(uncapped, 20) == 6765);
  CHECK(backoff_delay(uncapped, 200) == 7 * 86'400'000LL);
}

TEST_CASE("no backoff means no delay" * doctest::timeout(10)) {
  const auto p = policy(backoff_kind::none, 700, 3000);
  CHECK(backoff_delay(p, 1) == 0);
  CHECK(backoff_delay(p, 9) == 0);
}

TEST_CASE("jitter keeps a retry within its band around the delay" * doctest::timeout(10)) {
  const auto p = policy(backoff_kind::exponential, 1000, 30000, 10, 0.15);
  std::mt19937_64 rng(42);
  const millis now = 1'000'000;
  std::vector<millis> seen;
  for (int i = 0; i < 2000; ++i) {
    auto d = decide_failure(p, 2, true, 0, now, rng);
    REQUIRE(d.retry);
    const auto delay = d.ready_at - now;
    CHECK(delay >= 1700);  // 2000 * 0.85
    CHECK(delay <= 2300);  // 2000 * 1.15
    seen.push_back(delay);
  }
  std::sort(seen.begin(), seen.end());
  CHECK(seen.front() < 1800);  // the band is really used
  CHECK(seen.back() > 2200);

  const auto exact = policy(backoff_kind::exponential, 1000, 30000, 10, 0.0);
  auto d = decide_failure(exact, 3, true, 0, now, rng);
  CHECK(d.retry);
  CHECK(d.ready_at == now + 4000);
}

TEST_CASE("a handler's retry_after replaces the backoff exactly" * doctest::timeout(10)) {
  const auto p = policy(backoff_kind::exponential, 1000, 2000, 10, 0.5);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100; ++i) {
    auto d = decide_failure(p, 1, true, 5000, 100, rng);
    CHECK(d.retry);
    CHECK(d.ready_at == 5100);
  }
}

TEST_CASE("a failure is final when not retryable or out of attempts" * doctest::timeout(10)) {
  std::mt19937_64 rng(1);
  auto p = policy(backoff_kind::none, 1000, 30000, 3);
  CHECK(decide_failure(p, 1, true, 0, 0, rng).retry);
  CHECK(decide_failure(p, 2, true, 0, 0, rng).retry);
  CHECK_FALSE(decide_failure(p, 3, true, 0, 0, rng).retry);
  CHECK_FALSE(decide_failure(p, 4, true, 0, 0, rng).retry);
  CHECK_FALSE(decide_failure(p, 1, false, 0, 0, rng).retry);
  CHECK_FALSE(decide_failure(p, 1, false, 5000, 0, rng).retry);
  p.retryable = false;
  CHECK_FALSE(decide_failure(p, 1, true, 0, 0, rng).retry);
  CHECK_FALSE(decide_failure(p, 1, true, 5000, 0, rng).retry);
  p.retryable = true;
  p.max_attempts = 1;
  CHECK_FALSE(decide_failure(p, 1, true, 0, 0, rng).retry);
}

// ---- parse_pipeline ---------------------------------------------------------------------

TEST_CASE("parsing a pipeline computes parents children and all ancestors" * doctest::timeout(10)) {
  // root -> (left, right) -> join -> tail; lone stands apart.
  auto p = parse_pipeline(R"({"namespace":"ns","name":"dag","version":"2","steps":[
      {"name":"tail","handler":"h","dependencies":["join"]},
      {"name":"join","handler":"h","dependencies":["left","right"]},
      {"name":"left","handler":"h","dependencies":["root"]},
      {"name":"right","handler":"h","dependencies":["root"],
       "retry":{"max_attempts":5,"backoff":"linear","base_ms":10,"cap_ms":50,"jitter":0,
                "retryable":false},
       "config":{"k":[1,2]},"timeout_ms":2500},
      {"name":"root","handler":"h"},
      {"name":"lone","handler":"other"}]})");
  REQUIRE(p.get() != nullptr);
  CHECK(p->label() == "ns/dag@2");
  REQUIRE(p->steps.size() == 6);
  const auto& tail = p->steps[0];
  const auto& join = p->steps[1];
  const auto& right = p->steps[3];
  const auto& root = p->steps[4];
  const auto& lone = p->steps[5];
  CHECK(p->index_of("root") == 4);
  CHECK(p->index_of("nope") == -1);

  CHECK(names(*p, tail.parents) == std::vector<std::string>{"join"});
  CHECK(names(*p, tail.ancestors) == std::vector<std::string>{"join", "left", "right", "root"});
  CHECK(names(*p, join.ancestors) == std::vector<std::string>{"left", "right", "root"});
  CHECK(names(*p, join.parents) == std::vector<std::string>{"left", "right"});
  CHECK(names(*p, root.children) == std::vector<std::string>{"left", "right"});
  CHECK(root.ancestors.empty());
  CHECK(lone.ancestors.empty());
  CHECK(lone.children.empty());

  CHECK(right.retry.max_attempts == 5);
  CHECK(right.retry.backoff == backoff_kind::linear);
  CHECK(right.retry.base_ms == 10);
  CHECK(right.retry.cap_ms == 50);
  CHECK(right.retry.jitter == doctest::Approx(0.0));
  CHECK_FALSE(right.retry.retryable);
  CHECK(right.timeout_ms == 2500);
  CHECK(right.config == R"({"k":[1,2]})");
  CHECK(root.config == "{}");
  CHECK(root.retry.max_attempts == 3);
  CHECK(root.retry.backoff == backoff_kind::exponential);
}

TEST_CASE("defaults spelled out or left out give the same canonical pipeline"
          * doctest::timeout(10)) {
  auto terse = parse_pipeline(
      R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a","handler":"h"}]})");
  auto verbose = parse_pipeline(R"({"version":"1","name":"p","namespace":"ns","steps":[
      {"handler":"h","name":"a","config":{},"dependencies":[],"timeout_ms":0,
       "retry":{"max_attempts":3,"backoff":"exponential","base_ms":1000,"cap_ms":30000,
                "jitter":0.15,"retryable":true}}]})");
  CHECK(terse->canonical_json == verbose->canonical_json);
  auto different = parse_pipeline(
      R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a","handler":"h2"}]})");
  CHECK(terse->canonical_json != different->canonical_json);
}

TEST_CASE("a step's method defaults to call and counts in the canonical form only otherwise"
          * doctest::timeout(10)) {
  auto plain = parse_pipeline(
      R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a","handler":"h"}]})");
  auto call = parse_pipeline(R"({"namespace":"ns","name":"p","version":"1",
      "steps":[{"name":"a","handler":"h","method":"call"}]})");
  auto refund = parse_pipeline(R"({"namespace":"ns","name":"p","version":"1",
      "steps":[{"name":"a","handler":"h","method":"refund",
                "retry":{"backoff":"fibonacci","base_ms":250}}]})");
  CHECK(plain->steps[0].method == "call");
  CHECK(call->steps[0].method == "call");
  CHECK(refund->steps[0].method == "refund");
  CHECK(refund->steps[0].retry.backoff == backoff_kind::fibonacci);
  CHECK(plain->canonical_json == call->canonical_json);
  CHECK(plain->canonical_json.find("method") == std::string::npos);  // as stored before methods
  CHECK(refund->canonical_json.find(R"("method":"refund")") != std::string::npos);
  CHECK(refund->canonical_json.find(R"("backoff":"fibonacci")") != std::string::npos);
}

TEST_CASE("parsing a cyclic pipeline fails naming a step on the cycle" * doctest::timeout(10)) {
  auto [code, message] = error_of([] {
    parse_pipeline(R"({"namespace":"ns","name":"p","version":"1","steps":[
        {"name":"entry","handler":"h"},
        {"name":"alpha","handler":"h","dependencies":["entry","gamma"]},
        {"name":"beta","handler":"h","dependencies":["alpha"]},
        {"name":"gamma","handler":"h","dependencies":["beta"]},
        {"name":"after","handler":"h","dependencies":["gamma"]}]})");
  });
  INFO(message);
  CHECK(code == TK_VALIDATION);
  CHECK((message.find("alpha") != std::string::npos || message.find("beta") != std::string::npos
         || message.find("gamma") != std::string::npos));
  CHECK(message.find("entry") == std::string::npos);

  auto [self_code, self_message] = error_of([] {
    parse_pipeline(R"({"namespace":"ns","name":"p","version":"1","steps":[
        {"name":"ouroboros","handler":"h","dependencies":["ouroboros"]}]})");
  });
  CHECK(self_code == TK_VALIDATION);
  CHECK(self_message.find("ouroboros") != std::string::npos);
}

TEST_CASE("parsing rejects bad pipelines with the right code" * doctest::timeout(10)) {
  struct sample {
    const char* text;
    tk_status code;
  };
  const sample samples[] = {
      {"{", TK_MALFORMED_JSON},
      {"[]", TK_VALIDATION},
      {R"({"namespace":"ns","name":"p","version":"1","steps":[]})", TK_VALIDATION},
      {R"({"name":"p","version":"1","steps":[{"name":"a","handler":"h"}]})", TK_VALIDATION},
      {R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a"}]})", TK_VALIDATION},
      {R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a","handler":"h",
          "retry":{"backoff":"golden"}}]})",
       TK_VALIDATION},
      {R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a","handler":"h",
          "method":""}]})",
       TK_VALIDATION},
      {R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a","handler":"h",
          "method":7}]})",
       TK_VALIDATION},
      {R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a","handler":"h",
          "retry":{"max_attempts":0}}]})",
       TK_VALIDATION},
      {R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a","handler":"h",
          "retry":{"jitter":1.5}}]})",
       TK_VALIDATION},
      {R"({"namespace":"ns","name":"p","version":"1","steps":[{"name":"a","handler":"h",
          "dependencies":["b","b"]},{"name":"b","handler":"h"}]})",
       TK_VALIDATION},
      {R"({"namespace":"ns","name":"p","version":"1","extra":1,
          "steps":[{"name":"a","handler":"h"}]})",
       TK_VALIDATION},
  };
  for (const auto& s : samples) {
    INFO(std::string(s.text));
    auto [code, message] = error_of([&] { parse_pipeline(s.text); });
    CHECK(code == s.code);
    CHECK_FALSE(message.empty());
  }
}

// ---- wait tokens ---------------------------------------------------------------------

TEST_CASE("siphash-2-4 matches the reference vector of its paper" * doctest::timeout(10)) {
  unsigned char msg[15];
  for (int i = 0; i < 15; ++i)
    msg[i] = static_cast<unsigned char>(i);
  // Key bytes 00..0f, read little-endian.
  const std::uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
  CHECK(tasker::core::siphash24(k0, k1, msg, sizeof msg) == 0xa129ca6149be45e5ULL);
}

TEST_CASE("a wait token checks only under its key and only unaltered" * doctest::timeout(10)) {
  using namespace tasker::core;
  const auto key = wait_key::random();
  const auto token = make_wait_token(key, 42, 7);
  std::int64_t step = 0, seq = 0;
  REQUIRE(check_wait_token(key, token, step, seq));
  CHECK(step == 42);
  CHECK(seq == 7);
  wait_key copy;
  REQUIRE(wait_key::from_hex(key.to_hex(), copy));
  CHECK(check_wait_token(copy, token, step, seq));
  CHECK_FALSE(check_wait_token(wait_key::random(), token, step, seq));
  // Every single-character change is refused.
  for (std::size_t i = 0; i < token.size(); ++i) {
    auto t = token;
    t[i] = t[i] == '1' ? '2' : '1';
    INFO(t);
    CHECK_FALSE(check_wait_token(key, t, step, seq));
  }
  CHECK_FALSE(check_wait_token(key, token + "0", step, seq));
  CHECK_FALSE(check_wait_token(key, token.substr(1), step, seq));
  CHECK_FALSE(check_wait_token(key, "42-7-" + std::string(32, 'g'), step, seq));
  CHECK_FALSE(wait_key::from_hex("00", copy));
}

TEST_CASE("an ancestor-results text gives each step's result by byte length, colons and all"
          * doctest::timeout(10)) {
  const std::string text = std::string("0:4:true") + "2:13:{\"a\":\"b:1:c\"}" + "5:0:";
  CHECK(ancestor_result(text, 0) == "true");
  CHECK(ancestor_result(text, 2) == "{\"a\":\"b:1:c\"}");
  CHECK(ancestor_result(text, 5).empty());
  CHECK(ancestor_result(text, 1).empty());  // not complete: none
  CHECK(ancestor_result("", 0).empty());
  CHECK(ancestor_result("3:99:x", 3) == "x");  // a short text is cut, not overrun
}

TEST_CASE("a finished-tasks payload reads back what was appended and skips what it cannot read"
          * doctest::timeout(10)) {
  std::string payload;
  append_finished(payload, 12, task_state::complete);
  append_finished(payload, 13, task_state::error);
  CHECK(payload == "12:complete 13:error");
  effects fx;
  parse_finished(payload + " junk 14:nonsense 15:cancelled", fx);
  using done = std::pair<std::int64_t, task_state>;
  CHECK(fx.finished
        == std::vector<done>{
            {12, task_state::complete}, {13, task_state::error}, {15, task_state::cancelled}});
}
