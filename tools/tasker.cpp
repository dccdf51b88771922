// tasker — the command line of the orchestration core: submit tasks, look at
// them, cancel and retry them, against the same store URL the workers use
// (through the C ABI, tasker/core.h); and check templates with the workers'
// YAML loader (no store needed).
//
//   tasker submit shop/order@1.0.0 --context '{"order_id":"A-1"}' --wait
//   tasker status 42
//   tasker list --state error --all
//   tasker retry 42
//   tasker validate templates/*.yaml
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "format.hpp"
#include <tasker/core.hpp>
#include <tasker/runtime/pipeline.hpp>

namespace tasker::tools {

using nlohmann::json;

namespace {

/// The exit codes scripts can rely on (also in `tasker --help` and docs/guide.md).
enum exit_code : int {
  exit_ok = 0,
  exit_failure = 1,         ///< anything not listed below
  exit_usage = 2,           ///< a bad option or argument
  exit_not_found = 3,       ///< no such task or pipeline
  exit_conflict = 4,        ///< the task's state forbids the request
  exit_store = 5,           ///< the store is unreachable or failed
  exit_task_error = 6,      ///< submit --wait: the task ended in error
  exit_task_cancelled = 7,  ///< submit --wait: the task was cancelled
  exit_timed_out = 8        ///< submit --wait: --timeout passed first
};

const char* const exit_codes_help = R"(Store:
  --store URL, else $TASKER_STORE, else sqlite:tasker.db (the workers' default).
  sqlite:PATH (the file must exist: workers create it),
  postgresql://USER@HOST:PORT/DB[?schema=NAME], memory: (empty; for trying out).

Exit codes:
  0  ok
  1  failure not listed below
  2  usage error: a bad option or argument (bad --context JSON, unknown
     --state, NAME without @VERSION, a --store URL that is not one); or
     (validate) a template that does not load
  3  not found: no such task, or no such pipeline registered, or (signal) no
     wait has this token
  4  conflict: the task's state forbids it (cancel of an ended task, retry of
     a task not in error), an idempotency key names another pipeline's task,
     or (signal) the token was signalled already or its wait is over
  5  store unreachable or store error (missing SQLite file, server down)
  submit --wait only:
  6  the task ended in error
  7  the task was cancelled
  8  --timeout passed before the task ended
)";

/// Ends the command: `message` goes to stderr, `code` is the exit code.
class command_error : public std::runtime_error {
public:
  command_error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const noexcept { return code_; }

private:
  int code_;
};

/// The exit code for a failed core call.
int exit_code_of(tk_status status) {
  switch (status) {
    case TK_NOT_FOUND: return exit_not_found;
    case TK_CONFLICT: return exit_conflict;
    case TK_STORE_ERROR: return exit_store;
    case TK_INVALID_ARGUMENT:
    case TK_MALFORMED_JSON:
    case TK_VALIDATION:
    case TK_TOO_LARGE:
    case TK_UNSUPPORTED: return exit_usage;
    default: return exit_failure;
  }
}

/// Throws the command_error for a failed core call; `prefix` names the input.
[[noreturn]] void fail_call(const tk_error& err, const std::string& prefix = "") {
  throw command_error(exit_code_of(err.code), prefix + err.message);
}

/// The URL with its password (postgresql://user:secret@host) masked, for messages.
std::string redact(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos)
    return url;
  const auto at = url.find('@', scheme + 3);
  const auto colon = url.find(':', scheme + 3);
  if (at == std::string::npos || colon == std::string::npos || colon > at)
    return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

/// A message on one line: libpq's span several, with tabs.
std::string one_line(std::string_view message) {
  std::string out;
  for (char c : message) {
    const bool space = static_cast<unsigned char>(c) < 0x20 || c == ' ';
    if (space && (out.empty() || out.back() == ' '))
      continue;
    out += space ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  return out;
}

/// Opens the store. An SQLite file that does not exist is not created: a
/// mistyped path would otherwise answer "not found" from an empty database.
core_handle open_store(const std::string& url) {
  if (url.rfind("sqlite:", 0) == 0) {
    std::string path = url.substr(7);
    if (path.rfind("//", 0) == 0)
      path = path.substr(2);
    struct stat st {};
    if (!path.empty() && path != ":memory:" && path.rfind("file:", 0) != 0
        && ::stat(path.c_str(), &st) != 0)
      throw command_error(exit_store, "store " + url + ": no such SQLite database (" + path
                                          + "); workers create it when they start "
                                            "(--store or TASKER_STORE names another)");
  }
  tk_error err{};
  auto core = core_handle::open(url.c_str(), err);
  if (!core)
    throw command_error(exit_code_of(err.code),
                        "cannot open store " + redact(url) + " (--store): " + err.message);
  return core;
}

/// Prints core JSON text (or ours) as one line.
void print_json(const std::string& text) {
  std::cout << text << '\n';
}

json parse_core_json(const char* text) {
  auto j = json::parse(text ? text : "", nullptr, false);
  if (j.is_discarded())
    throw command_error(exit_failure, "the core returned JSON that does not parse");
  return j;
}

std::int64_t int_or(const json& j, const char* key, std::int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : fallback;
}

std::string text_of(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
}

std::string pipeline_label(const json& task) {
  return text_of(task, "namespace") + "/" + text_of(task, "name") + "@" + text_of(task, "version");
}

bool final_state(const std::string& state) {
  return state == "complete" || state == "error" || state == "cancelled";
}

// ---- options every subcommand shares -----------------------------------------------

struct common_options {
  std::string global_store;  // `tasker --store URL <command>`
  std::string local_store;   // `tasker <command> --store URL`
  CLI::Option* global = nullptr;
  std::vector<CLI::Option*> locals;
  bool json = false;

  void add_to(CLI::App& sub) {
    locals.push_back(sub.add_option("--store,-s", local_store,
                                    "Store URL (default: $TASKER_STORE, else sqlite:tasker.db)"));
    sub.add_flag("--json", json, "Machine-readable output: the core's JSON, or a small object");
  }

  std::string store() const {
    for (auto* o : locals)
      if (o->count() > 0)
        return local_store;
    if (global && global->count() > 0)
      return global_store;
    if (const char* env = std::getenv("TASKER_STORE"); env && *env)
      return env;
    return "sqlite:tasker.db";
  }
};

// ---- submit -------------------------------------------------------------------------

struct submit_options {
  std::string pipeline;
  std::string context;
  std::string context_file;
  std::string idempotency_key;
  std::int32_t priority = 0;
  bool wait = false;
  double timeout_s = -1;
  CLI::Option* context_opt = nullptr;
  CLI::Option* context_file_opt = nullptr;
  CLI::Option* key_opt = nullptr;
};

struct pipeline_name {
  std::string ns, name, version;
};

pipeline_name parse_pipeline_name(const std::string& text) {
  const auto slash = text.find('/');
  const auto at = text.rfind('@');
  pipeline_name p;
  if (slash == std::string::npos || slash == 0 || (at != std::string::npos && at < slash))
    throw command_error(exit_usage, "pipeline \"" + text + "\" is not NAMESPACE/NAME@VERSION");
  p.ns = text.substr(0, slash);
  p.name = text.substr(slash + 1, at == std::string::npos ? std::string::npos : at - slash - 1);
  if (p.name.empty())
    throw command_error(exit_usage,
                        "pipeline \"" + text + "\" has no name (NAMESPACE/NAME@VERSION)");
  if (at == std::string::npos)
    throw command_error(exit_usage,
                        "pipeline \"" + text + "\" needs a version: " + text
                            + "@VERSION (the core's C ABI cannot list registered versions, "
                              "so the newest cannot be chosen for you)");
  p.version = text.substr(at + 1);
  if (p.version.empty())
    throw command_error(exit_usage, "pipeline \"" + text + "\" has an empty version after @");
  return p;
}

/// The task context, checked before the store is opened: valid JSON, an object.
std::string read_context(const submit_options& o, std::string& named) {
  std::string text = "{}";
  named = "--context";
  if (o.context_opt->count() > 0) {
    text = o.context;
  } else if (o.context_file_opt->count() > 0) {
    named = "--context-file " + o.context_file;
    std::ifstream in(o.context_file, std::ios::binary);
    if (!in.is_open())
      throw command_error(exit_usage, named + ": cannot open the file");
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad())
      throw command_error(exit_usage, named + ": cannot read the file");
    text = buf.str();
  }
  try {
    const auto parsed = json::parse(text);
    if (!parsed.is_object())
      throw command_error(exit_usage,
                          named + " must be a JSON object, not " + std::string(parsed.type_name()));
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (auto close = what.find("] "); close != std::string::npos)
      what = what.substr(close + 2);
    throw command_error(exit_usage, named + " is not valid JSON: " + what);
  }
  return text;
}

/// Hears of ended tasks through the core's listener (at once on PostgreSQL,
/// whose NOTIFY carries other processes' news).
struct task_waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool heard = false;

  static void on_finished(void* self, std::int64_t, const char*) {
    auto* w = static_cast<task_waiter*>(self);
    {
      std::lock_guard<std::mutex> g{w->mu};
      w->heard = true;
    }
    w->cv.notify_all();
  }
};

/// The first failed step's name and message, for the line that reports an error.
std::string first_error(tk_core* core, std::int64_t id) {
  char* text = nullptr;
  tk_error err{};
  if (tk_task_status(core, id, &text, &err) != TK_OK)
    return {};
  const auto status = json::parse(text, nullptr, false);
  tk_free(text);
  if (status.is_discarded() || !status.contains("steps"))
    return {};
  for (const auto& s : status.at("steps"))
    if (text_of(s, "state") == "error") {
      std::string out = "step " + text_of(s, "name");
      if (auto e = s.find("last_error"); e != s.end() && e->is_object())
        out += ": " + text_of(*e, "message");
      return out;
    }
  return {};
}

int run_submit(const submit_options& o, const common_options& common) {
  const auto p = parse_pipeline_name(o.pipeline);
  std::string context_name;
  const auto context = read_context(o, context_name);
  task_waiter waiter;  // outlives the core, which calls it
  auto core = open_store(common.store());
  tk_error err{};
  if (o.wait && tk_set_task_listener(core.get(), &task_waiter::on_finished, &waiter, &err) != TK_OK)
    fail_call(err);

  tk_task_spec spec{};
  spec.namespace_name = p.ns.c_str();
  spec.name = p.name.c_str();
  spec.version = p.version.c_str();
  spec.context_json = context.c_str();
  spec.idempotency_key = o.key_opt->count() > 0 ? o.idempotency_key.c_str() : nullptr;
  spec.priority = o.priority;
  std::int64_t id = 0;
  int created = 0;
  if (tk_create_task(core.get(), &spec, &id, &created, &err) != TK_OK) {
    if (err.code == TK_MALFORMED_JSON || err.code == TK_TOO_LARGE)
      fail_call(err, context_name + ": ");
    if (err.code == TK_INVALID_ARGUMENT && o.key_opt->count() > 0)
      fail_call(err, "--idempotency-key: ");
    fail_call(err);
  }
  json out{{"id", id}, {"created", created != 0}};
  if (!common.json) {
    std::cout << id << std::endl;  // at once: a script may want it while we wait
    if (!created)
      std::cerr << "tasker submit: the idempotency key names task " << id << ", created earlier\n";
  }
  if (!o.wait) {
    if (common.json)
      print_json(out.dump());
    return exit_ok;
  }

  using clock = std::chrono::steady_clock;
  const bool bounded = o.timeout_s >= 0;
  const auto deadline = clock::now()
                        + std::chrono::duration_cast<clock::duration>(
                            std::chrono::duration<double>(bounded ? o.timeout_s : 0.0));
  // The task is run by workers in other processes: the listener hears of it
  // on PostgreSQL; on SQLite only this check, four times a second, does.
  const auto check_every = std::chrono::milliseconds(250);
  std::string state;
  bool timed_out = false;
  while (true) {
    const char* s = nullptr;
    if (tk_task_state(core.get(), id, &s, &err) != TK_OK)
      fail_call(err);
    state = s;
    if (final_state(state))
      break;
    const auto now = clock::now();
    if (bounded && now >= deadline) {
      timed_out = true;
      break;
    }
    auto until = now + check_every;
    if (bounded && deadline < until)
      until = deadline;
    std::unique_lock<std::mutex> lock{waiter.mu};
    waiter.cv.wait_until(lock, until, [&] { return waiter.heard; });
    waiter.heard = false;
  }
  tk_set_task_listener(core.get(), nullptr, nullptr, nullptr);

  out["state"] = state;
  if (timed_out)
    out["timed_out"] = true;
  if (common.json) {
    print_json(out.dump());
  } else if (timed_out) {
    std::cerr << "tasker submit: task " << id << " is still " << state << " after --timeout "
              << o.timeout_s << " s\n";
  } else if (state != "complete") {
    std::string why = state == "error" ? first_error(core.get(), id) : std::string{};
    std::cerr << "tasker submit: task " << id << " ended " << state
              << (why.empty() ? "" : ": " + why) << '\n';
  }
  if (timed_out)
    return exit_timed_out;
  if (state == "error")
    return exit_task_error;
  if (state == "cancelled")
    return exit_task_cancelled;
  return exit_ok;
}

// ---- status -------------------------------------------------------------------------

int run_status(std::int64_t id, const common_options& common) {
  auto core = open_store(common.store());
  char* text = nullptr;
  tk_error err{};
  if (tk_task_status(core.get(), id, &text, &err) != TK_OK)
    fail_call(err);
  const std::string raw = text;
  tk_free(text);
  if (common.json) {
    print_json(raw);
    return exit_ok;
  }
  const auto task = parse_core_json(raw.c_str());
  const std::int64_t now = tk_now_ms(core.get());
  const auto state = text_of(task, "state");
  const auto created = int_or(task, "created_at", -1);
  const auto completed = int_or(task, "completed_at", -1);
  const bool ended = final_state(state);
  std::cout << "task " << id << "  " << fit(pipeline_label(task), SIZE_MAX) << "  " << state
            << "  created " << format_time(created) << "  duration "
            << format_duration(created < 0 ? -1 : (ended ? completed : now) - created)
            << (ended ? "" : " so far") << "\n\n";

  table steps({"STEP", "STATE", "ATTEMPTS", "DURATION", "ERROR"});
  for (const auto& s : task.value("steps", json::array())) {
    const auto step_state = text_of(s, "state");
    const auto started = int_or(s, "started_at", -1);
    const auto finished = int_or(s, "finished_at", -1);
    std::string duration = "-";
    if (started >= 0 && finished >= started)
      duration = format_duration(finished - started);
    else if (started >= 0 && step_state == "running")
      duration = format_duration(now - started) + " so far";
    // The last error of a step that then succeeded is history: --json has it.
    std::string error;
    if (auto e = s.find("last_error"); e != s.end() && e->is_object() && step_state != "complete") {
      const auto type = text_of(*e, "type");
      error = (type.empty() ? "" : type + ": ") + text_of(*e, "message");
    }
    steps.add({text_of(s, "name"), step_state,
               std::to_string(int_or(s, "attempts", 0)) + "/"
                   + std::to_string(int_or(s, "max_attempts", 0)),
               duration, error});
  }
  std::cout << steps.render(terminal_width());
  for (const auto& s : task.value("steps", json::array())) {
    auto w = s.find("wait");
    if (w == s.end() || !w->is_object())
      continue;
    std::cout << "\nstep " << text_of(s, "name") << " waits for signal \"" << text_of(*w, "signal")
              << "\" until " << format_time(int_or(*w, "timeout_at", -1))
              << "; deliver it with:\n  tasker signal " << text_of(*w, "token")
              << " --payload '<JSON>'\n";
  }
  return exit_ok;
}

// ---- list ---------------------------------------------------------------------------

struct list_options {
  std::string state;
  std::string ns;
  int limit = 100;
  std::int64_t after = 0;
  bool all = false;
};

int run_list(const list_options& o, const common_options& common) {
  auto core = open_store(common.store());
  json tasks = json::array();
  json next = nullptr;
  std::int64_t after = o.after;
  std::string first_page;
  while (true) {
    json filter{{"limit", o.limit}};
    if (!o.state.empty())
      filter["state"] = o.state;
    if (!o.ns.empty())
      filter["namespace"] = o.ns;
    if (after > 0)
      filter["after"] = after;
    char* text = nullptr;
    tk_error err{};
    if (tk_list_tasks(core.get(), filter.dump().c_str(), &text, &err) != TK_OK)
      fail_call(err);
    const std::string raw = text;
    tk_free(text);
    if (first_page.empty())
      first_page = raw;
    auto page = parse_core_json(raw.c_str());
    for (auto& t : page.at("tasks"))
      tasks.push_back(std::move(t));
    next = page.at("next");
    if (!o.all || !next.is_number_integer())
      break;
    after = next.get<std::int64_t>();
  }
  if (common.json) {
    // One page: the core's JSON as is; --all: every page in one document.
    print_json(o.all ? json{{"tasks", tasks}, {"next", nullptr}}.dump() : first_page);
    return exit_ok;
  }
  if (tasks.empty()) {
    std::cout << "no tasks\n";
    return exit_ok;
  }
  table t({"ID", "PIPELINE", "STATE", "PRIORITY", "CREATED", "UPDATED"});
  for (const auto& task : tasks)
    t.add({std::to_string(int_or(task, "id", 0)), pipeline_label(task), text_of(task, "state"),
           std::to_string(int_or(task, "priority", 0)), format_time(int_or(task, "created_at", -1)),
           format_time(int_or(task, "updated_at", -1))});
  std::cout << t.render(terminal_width());
  if (next.is_number_integer())
    std::cerr << "more tasks: tasker list --after " << next.get<std::int64_t>() << " (or --all)\n";
  return exit_ok;
}

// ---- cancel, retry ------------------------------------------------------------------

int run_cancel(std::int64_t id, const common_options& common) {
  auto core = open_store(common.store());
  tk_error err{};
  if (tk_cancel_task(core.get(), id, &err) != TK_OK)
    fail_call(err);
  if (common.json)
    print_json(json{{"id", id}, {"state", "cancelled"}}.dump());
  else
    std::cout << "task " << id << " cancelled\n";
  return exit_ok;
}

// ---- signal -----------------------------------------------------------------------

struct signal_options {
  std::string token;
  std::string payload = "null";
  std::string payload_file;
  CLI::Option* payload_file_opt = nullptr;
};

int run_signal(const signal_options& o, const common_options& common) {
  std::string payload = o.payload;
  if (o.payload_file_opt->count() > 0) {
    std::ifstream in(o.payload_file, std::ios::binary);
    std::ostringstream buf;
    if (!in.is_open() || !(buf << in.rdbuf()) || in.bad())
      throw command_error(exit_usage, "--payload-file " + o.payload_file + ": cannot read it");
    payload = buf.str();
  }
  if (!json::accept(payload))
    throw command_error(exit_usage, "the payload is not valid JSON");
  auto core = open_store(common.store());
  tk_error err{};
  if (tk_signal(core.get(), o.token.c_str(), payload.c_str(), &err) != TK_OK)
    fail_call(err);
  if (common.json)
    print_json(json{{"signalled", true}}.dump());
  else
    std::cout << "signal delivered: the step runs again\n";
  return exit_ok;
}

int run_retry(std::int64_t id, const common_options& common) {
  auto core = open_store(common.store());
  tk_error err{};
  if (tk_retry_task(core.get(), id, &err) != TK_OK)
    fail_call(err);
  if (common.json)
    print_json(json{{"id", id}, {"state", "running"}}.dump());
  else
    std::cout << "task " << id << " is running again\n";
  return exit_ok;
}

// ---- validate -----------------------------------------------------------------------

/// Loads each file (a directory: its *.yaml / *.yml files, as a worker's
/// --templates) with the workers' loader, which has the core validate the
/// pipeline too, in every environment it defines. The same pipeline version
/// in two files rejects the later. With `environment`, each valid file says
/// whether that environment changes it (a worker started with it would run
/// its overrides) or not.
int run_validate(const std::vector<std::string>& inputs, bool as_json,
                 const std::string& environment) {
  std::vector<std::filesystem::path> files;
  std::vector<std::string> unlisted;  // directories that cannot be listed
  for (const auto& input : inputs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(input, ec)) {
      files.emplace_back(input);
      continue;
    }
    try {
      const auto listed = list_template_files(input);
      if (listed.empty() && !as_json)
        std::cerr << "tasker validate: " << input << " holds no *.yaml or *.yml file\n";
      files.insert(files.end(), listed.begin(), listed.end());
    } catch (const pipeline_error& e) {
      unlisted.insert(unlisted.end(), e.problems().begin(), e.problems().end());
    }
  }
  json report = json::array();
  std::size_t invalid = unlisted.size();
  for (const auto& t : scan_pipeline_files(files)) {
    if (!t.loaded) {
      ++invalid;
      report.push_back({{"file", t.path.string()}, {"valid", false}, {"problems", t.problems}});
      if (!as_json)
        for (const auto& problem : t.problems)
          std::cerr << problem << '\n';
      continue;
    }
    const auto& p = *t.loaded;
    const auto label = p.namespace_name() + "/" + p.name() + "@" + p.version();
    json entry = {{"file", t.path.string()},
                  {"valid", true},
                  {"pipeline", label},
                  {"steps", p.steps().size()}};
    std::string environments;
    if (!p.environments().empty()) {
      entry["environments"] = json::array();
      for (const auto& [name, _] : p.environments()) {
        entry["environments"].push_back(name);
        environments += (environments.empty() ? "; environments: " : ", ") + name;
      }
    }
    if (!environment.empty()) {
      const bool applies = p.environments().count(environment) > 0;
      entry["environment_applies"] = applies;
      environments += applies ? "; environment " + environment + " applies"
                              : "; no environment " + environment + ": runs as written";
    }
    report.push_back(std::move(entry));
    if (!as_json)
      std::cout << t.path.string() << ": valid: pipeline " << label << ", " << p.steps().size()
                << (p.steps().size() == 1 ? " step" : " steps") << environments << '\n';
  }
  for (const auto& problem : unlisted) {
    report.push_back({{"file", problem.substr(0, problem.find(": "))},
                      {"valid", false},
                      {"problems", {problem}}});
    if (!as_json)
      std::cerr << problem << '\n';
  }
  const std::size_t total = files.size() + unlisted.size();
  if (as_json)
    print_json(json{{"valid", invalid == 0}, {"files", report}}.dump(
        -1, ' ', false, json::error_handler_t::replace));  // a template's bytes need not be UTF-8
  else if (invalid > 0)
    std::cerr << "tasker validate: " << invalid << " of " << total
              << (total == 1 ? " template is" : " templates are") << " invalid\n";
  return invalid == 0 ? exit_ok : exit_usage;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"tasker: submit, inspect, cancel, retry and signal tasks of the tasker workflow "
               "engine, and validate its task templates",
               "tasker"};
  app.set_version_flag("--version", tk_version());
  app.require_subcommand(1);
  app.footer(exit_codes_help);
  common_options common;
  common.global = app.add_option("--store,-s", common.global_store,
                                 "Store URL (default: $TASKER_STORE, else sqlite:tasker.db)");

  submit_options submit;
  auto* sub_submit = app.add_subcommand("submit", "Create a task; print its id");
  sub_submit->add_option("PIPELINE", submit.pipeline, "NAMESPACE/NAME@VERSION of the pipeline")
      ->required();
  submit.context_opt =
      sub_submit->add_option("--context,-c", submit.context, "The task's input: a JSON object");
  submit.context_file_opt =
      sub_submit->add_option("--context-file", submit.context_file, "Read --context from a file")
          ->check(CLI::ExistingFile)
          ->excludes(submit.context_opt);
  submit.key_opt = sub_submit->add_option(
      "--idempotency-key", submit.idempotency_key,
      "Submitting the same key again returns the task it created (1 to 255 bytes)");
  sub_submit->add_option("--priority", submit.priority, "Higher runs first (default 0)");
  auto* wait = sub_submit->add_flag(
      "--wait,-w", submit.wait,
      "Wait until the task ends; exit 0 complete, 6 error, 7 cancelled, 8 timed out");
  sub_submit
      ->add_option("--timeout", submit.timeout_s, "With --wait: give up after SECONDS (exit 8)")
      ->check(CLI::NonNegativeNumber)
      ->needs(wait);
  common.add_to(*sub_submit);

  std::int64_t task_id = 0;
  auto* sub_status =
      app.add_subcommand("status", "Show a task and its steps (--json: all of it, untruncated)");
  sub_status->add_option("TASK_ID", task_id, "The task")->required();
  common.add_to(*sub_status);

  list_options list;
  auto* sub_list =
      app.add_subcommand("list", "List tasks, oldest first, one page (--all: every page)");
  sub_list->add_option("--state", list.state, "Only tasks in this state")
      ->check(CLI::IsMember({"pending", "running", "complete", "error", "cancelled"}));
  sub_list->add_option("--namespace,-n", list.ns, "Only tasks of pipelines in this namespace");
  sub_list->add_option("--limit", list.limit, "Tasks per page, 1 to 1000 (default 100)")
      ->check(CLI::Range(1, 1000));
  sub_list->add_option("--after", list.after, "Only tasks with a greater id (the page cursor)")
      ->check(CLI::NonNegativeNumber);
  sub_list->add_flag("--all", list.all, "Follow the cursor through every page");
  common.add_to(*sub_list);

  auto* sub_cancel = app.add_subcommand("cancel", "Cancel a task that has not ended");
  sub_cancel->add_option("TASK_ID", task_id, "The task")->required();
  common.add_to(*sub_cancel);

  auto* sub_retry = app.add_subcommand(
      "retry", "Run a task that ended in error again: its failed steps get fresh attempts");
  sub_retry->add_option("TASK_ID", task_id, "The task")->required();
  common.add_to(*sub_retry);

  signal_options sig;
  auto* sub_signal = app.add_subcommand(
      "signal", "Deliver a signal to a step that waits for one (its token is in `status`)");
  sub_signal->add_option("TOKEN", sig.token, "The wait's token")->required();
  auto* payload_opt = sub_signal->add_option("--payload,-p", sig.payload,
                                             "The signal's JSON payload (default null)");
  sig.payload_file_opt =
      sub_signal->add_option("--payload-file", sig.payload_file, "Read --payload from a file")
          ->check(CLI::ExistingFile)
          ->excludes(payload_opt);
  common.add_to(*sub_signal);

  std::vector<std::string> templates;
  bool validate_json = false;
  std::string validate_environment;
  auto* sub_validate = app.add_subcommand(
      "validate",
      "Check task templates (YAML) as a worker loads them: print every problem, exit 0 when "
      "all are valid, 2 otherwise; no store is opened");
  sub_validate
      ->add_option("FILE", templates,
                   "Template files; a directory stands for its *.yaml and *.yml files")
      ->required();
  sub_validate->add_flag("--json", validate_json,
                         "Machine-readable output: every file with its pipeline or problems");
  sub_validate->add_option("--environment", validate_environment,
                           "Also say whether each template has this environment's overrides "
                           "(every environment is checked either way)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, the version, or the error
    return code == 0 ? exit_ok : exit_usage;
  }

  const auto* chosen = app.get_subcommands().front();
  try {
    if (chosen == sub_submit)
      return run_submit(submit, common);
    if (chosen == sub_status)
      return run_status(task_id, common);
    if (chosen == sub_list)
      return run_list(list, common);
    if (chosen == sub_cancel)
      return run_cancel(task_id, common);
    if (chosen == sub_signal)
      return run_signal(sig, common);
    if (chosen == sub_validate)
      return run_validate(templates, validate_json, validate_environment);
    return run_retry(task_id, common);
  } catch (const command_error& e) {
    std::cerr << "tasker " << chosen->get_name() << ": " << one_line(e.what()) << '\n';
    return e.code();
  } catch (const std::exception& e) {
    std::cerr << "tasker " << chosen->get_name() << ": " << one_line(e.what()) << '\n';
    return exit_failure;
  }
}

}  // namespace tasker::tools

int main(int argc, char** argv) {
  return tasker::tools::run(argc, argv);
}
