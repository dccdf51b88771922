// What a function handler sees of its step: inputs, config, the results of
// its ancestors, and where it stands in its retries.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

#include <tasker/messages/step_event.hpp>

namespace tasker {

using json = nlohmann::json;

/// Thrown by step_context accessors when an input, a config value or a
/// dependency result is missing, malformed or has the wrong type. The runtime
/// turns it into a permanent `validation_error` failure of the step.
class step_input_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A view of one step_event with typed accessors (Tasker's getInput,
/// getConfig, getDependencyResult… in C++ spelling). JSON is parsed lazily,
/// once per part, so a context is meant for one thread (the handler's). The
/// event must outlive the context.
///
/// Typed accessors are strict: an integral T takes only JSON integers within
/// T's range (not 3.5, "3" or true), a floating-point T any number,
/// std::string only strings, bool only booleans; json returns the value as is.
/// Other types go through nlohmann's from_json.
class step_context {
public:
  explicit step_context(const step_event& event);

  std::int64_t task_id() const { return event_.task_id; }
  std::int64_t step_id() const { return event_.step_id; }
  const std::string& step_name() const { return event_.step_name; }
  const std::string& handler_name() const { return event_.handler; }
  /// The handler's entry point this step runs ("call" unless its pipeline names another).
  const std::string& method() const { return event_.method; }
  const std::string& namespace_name() const { return event_.namespace_name; }
  const step_event& event() const { return event_; }

  /// 1 on the first execution.
  int attempt() const { return event_.attempt; }
  int max_attempts() const { return event_.max_attempts; }
  /// True from the second attempt on.
  bool is_retry() const { return event_.attempt > 1; }
  /// True when a failure of this attempt will not be retried.
  bool is_last_retry() const { return event_.attempt >= event_.max_attempts; }

  /// This claim's wait token: hand it to whoever will signal, then answer
  /// tasker::wait_for(...). Valid while this attempt runs or waits.
  const std::string& wait_token() const { return event_.wait_token; }
  /// True when a signal reached this step: it resumes a wait (or runs again
  /// after an attempt that was resumed failed).
  bool signalled() const { return event_.signalled; }
  /// The name of the wait the signal answered ("" when none).
  const std::string& signal_name() const { return event_.signal_name; }
  /// The signal's payload (null when none came).
  json signal() const;

  /// The task's input (its context), a JSON object.
  const json& context() const;
  /// The input `key` as T; throws step_input_error if absent or not a T.
  template <class T>
  T input(std::string_view key) const {
    return convert<T>(lookup(context(), key, "input"), key, "input");
  }
  /// The input `key` as T, or `fallback` when absent or null (still throws
  /// when present with another type).
  template <class T>
  T input_or(std::string_view key, T fallback) const {
    const json* v = find(context(), key);
    return v && !v->is_null() ? convert<T>(*v, key, "input") : fallback;
  }
  /// input_or with a string literal fallback: `input_or("mode", "fast")`.
  std::string input_or(std::string_view key, const char* fallback) const {
    return input_or<std::string>(key, std::string(fallback));
  }

  /// The handler's configuration (the pipeline step's `config`, Tasker's
  /// `initialization`), a JSON object.
  const json& config() const;
  /// The config value `key` as T; throws step_input_error if absent or not a T.
  template <class T>
  T config(std::string_view key) const {
    return convert<T>(lookup(config(), key, "config"), key, "config");
  }
  /// The config value `key` as T, or `fallback` when absent or null.
  template <class T>
  T config_or(std::string_view key, T fallback) const {
    const json* v = find(config(), key);
    return v && !v->is_null() ? convert<T>(*v, key, "config") : fallback;
  }
  /// config_or with a string literal fallback.
  std::string config_or(std::string_view key, const char* fallback) const {
    return config_or<std::string>(key, std::string(fallback));
  }

  /// Every ancestor's result, keyed by step name.
  const json& dependency_results() const;
  /// The result of ancestor `step`; throws step_input_error if it is not an ancestor.
  const json& dependency_result(std::string_view step) const;
  /// A field inside an ancestor's result, following object keys (strings)
  /// and array indexes (integers); null when any part of the path is absent.
  template <class... Path>
  json dependency_field(std::string_view step, const Path&... path) const {
    const json* at = find(dependency_results(), step);
    ((at = at ? descend(*at, path) : nullptr), ...);
    return at ? *at : json();
  }
  /// A field of an ancestor's result as T, e.g. `dependency<std::int64_t>("s1",
  /// "value")`; throws step_input_error (a permanent validation_error) when the
  /// step is no ancestor, the path is absent, or the value is not a T.
  template <class T, class... Path>
  T dependency(std::string_view step, const Path&... path) const {
    const json& at = dependency_result(step);
    const json* v = &at;
    ((v = v ? descend(*v, path) : nullptr), ...);
    if (!v || v->is_null())
      throw step_input_error("the result of step \"" + std::string(step)
                             + "\" has nothing at the requested path");
    return convert<T>(*v, step, "the result of step");
  }

  /// The results of ancestors whose name starts with `prefix`, keyed by name
  /// (a batch's convergence step: `all_dependency_results("process_batch_")`
  /// holds every worker instance's result).
  json all_dependency_results(std::string_view prefix = {}) const;

  /// The step's own inputs, a JSON object ({} for most steps).
  const json& step_inputs() const;
  /// A batch worker instance's cursor: {"batch_id", "start_cursor",
  /// "end_cursor", "batch_size"} as its batchable step gave it; throws
  /// step_input_error for a step that is no batch worker instance.
  const json& batch_cursor() const;
  /// A batch worker's batch_config, as the pipeline declares it ({} if none).
  json batch_config() const;
  /// The step's last checkpoint (tasker::checkpoint), null when it has none:
  /// where a long step resumes after a yield or a failed attempt.
  json checkpoint() const;

private:
  const step_event& event_;
  mutable json context_, config_, dependencies_, inputs_;
  mutable bool context_parsed_ = false, config_parsed_ = false, dependencies_parsed_ = false,
               inputs_parsed_ = false;

  /// The member `key` of an object, or null.
  static const json* find(const json& object, std::string_view key);
  /// The member `key` of an object; throws step_input_error when absent.
  static const json& lookup(const json& object, std::string_view key, const char* what);
  static const json* descend_key(const json& at, std::string_view key);
  static const json* descend_index(const json& at, long long index);
  template <class Key>
  static const json* descend(const json& at, const Key& key) {
    if constexpr (std::is_integral_v<Key> && !std::is_same_v<Key, bool>)
      return descend_index(at, static_cast<long long>(key));
    else
      return descend_key(at, std::string_view{key});
  }
  [[noreturn]] static void wrong_type(std::string_view key, const char* what, const char* wanted,
                                      const json& got);
  [[noreturn]] static void out_of_range(std::string_view key, const char* what, const json& got,
                                        const std::string& min, const std::string& max);

  template <class T>
  static T convert(const json& v, std::string_view key, const char* what) {
    if constexpr (std::is_same_v<T, json>) {
      return v;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (v.is_boolean())
        return v.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      using limits = std::numeric_limits<T>;
      if (v.is_number_unsigned()) {
        if (v.get<std::uint64_t>() <= static_cast<std::uint64_t>(limits::max()))
          return static_cast<T>(v.get<std::uint64_t>());
        out_of_range(key, what, v, std::to_string(limits::min()), std::to_string(limits::max()));
      }
      if (v.is_number_integer()) {
        const auto i = v.get<std::int64_t>();
        bool fits = false;
        if constexpr (std::is_signed_v<T>)
          fits = i >= static_cast<std::int64_t>(limits::min())
                 && i <= static_cast<std::int64_t>(limits::max());
        else
          fits =
              i >= 0 && static_cast<std::uint64_t>(i) <= static_cast<std::uint64_t>(limits::max());
        if (fits)
          return static_cast<T>(i);
        out_of_range(key, what, v, std::to_string(limits::min()), std::to_string(limits::max()));
      }
    } else if constexpr (std::is_floating_point_v<T>) {
      if (v.is_number())
        return v.get<T>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (v.is_string())
        return v.get_ref<const std::string&>();
    } else {
      try {
        return v.get<T>();
      } catch (const json::exception&) {
      }
    }
    wrong_type(key, what, type_label<T>(), v);
  }
  template <class T>
  static const char* type_label() {
    if constexpr (std::is_same_v<T, bool>)
      return "a boolean";
    else if constexpr (std::is_integral_v<T>)
      return "an integer";
    else if constexpr (std::is_floating_point_v<T>)
      return "a number";
    else if constexpr (std::is_same_v<T, std::string>)
      return "a string";
    else
      return "a value of the requested type";
  }
};

}  // namespace tasker
