#include "model/pipeline.hpp"

#include <algorithm>
#include <functional>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "abi/error.hpp"
#include "model/json_schema.hpp"
#include "util/json.hpp"

namespace tasker::core {

namespace {

using nlohmann::json;

constexpr std::size_t max_steps = 10000;
constexpr int max_decision_depth = 32;  // decisions on one path

std::string in_quotes(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

/// Every problem found in a definition, in the order a reader meets them.
class problem_list {
public:
  void add(std::string problem) { list_.push_back(std::move(problem)); }
  bool empty() const { return list_.empty(); }

  /// Fails with TK_VALIDATION, one problem a line, as many as fit in a
  /// tk_error message (the rest are counted).
  [[noreturn]] void fail() const {
    constexpr std::size_t limit = sizeof(tk_error{}.message) - 1;
    constexpr std::size_t room = 24;  // for "\n(and 9999 more)"
    std::string msg;
    std::size_t shown = 0;
    for (const auto& p : list_) {
      const std::size_t need = (msg.empty() ? 0 : 1) + p.size();
      if (msg.size() + need > limit - room) {
        if (shown == 0) {  // one long problem: its start names the step
          msg = p.substr(0, limit - room) + "...";
          shown = 1;
        }
        break;
      }
      msg += (msg.empty() ? "" : "\n") + p;
      ++shown;
    }
    if (shown < list_.size())
      msg += "\n(and " + std::to_string(list_.size() - shown) + " more)";
    tasker::core::fail(TK_VALIDATION, msg);
  }

private:
  std::vector<std::string> list_;
};

/// A string field; missing or null is empty.
std::string get_string(const json& obj, const char* key, const std::string& at,
                       problem_list& problems) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null())
    return {};
  if (!it->is_string()) {
    problems.add(at + ": " + key + " must be a string");
    return {};
  }
  return it->get<std::string>();
}

/// An integer field in [min, max]; `label` and `unit` word the range problem.
template <class Int>
Int get_int(const json& obj, const char* key, Int fallback, Int min, Int max, const std::string& at,
            const std::string& label, const char* unit, problem_list& problems) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null())
    return fallback;
  if (!it->is_number_integer()) {
    problems.add(at + ": " + label + " must be an integer");
    return fallback;
  }
  const auto v = it->get<std::int64_t>();
  if (v < static_cast<std::int64_t>(min) || v > static_cast<std::int64_t>(max)) {
    problems.add(at + ": " + label + " is " + std::to_string(v) + unit + ", must be "
                 + std::to_string(min) + " to " + std::to_string(max) + unit);
    return fallback;
  }
  return static_cast<Int>(v);
}

/// Fields of `obj` other than `known` are problems.
template <std::size_t N>
void check_fields(const json& obj, const char* const (&known)[N], const std::string& at,
                  problem_list& problems) {
  for (auto& [key, _] : obj.items())
    if (std::none_of(std::begin(known), std::end(known), [&](const char* k) { return key == k; }))
      problems.add(at + ": unknown field " + in_quotes(key));
}

retry_policy parse_retry(const json& step, const std::string& at, problem_list& problems) {
  retry_policy p;
  auto it = step.find("retry");
  if (it == step.end() || it->is_null())
    return p;
  if (!it->is_object()) {
    problems.add(at + ": retry must be an object");
    return p;
  }
  const auto& r = *it;
  static const char* const known[] = {"max_attempts", "backoff", "base_ms",
                                      "cap_ms",       "jitter",  "retryable"};
  check_fields(r, known, at + " retry", problems);
  p.max_attempts = get_int<int>(r, "max_attempts", p.max_attempts, 1, 1000, at,
                                "retry max_attempts", "", problems);
  p.base_ms =
      get_int<millis>(r, "base_ms", p.base_ms, 0, 86'400'000, at, "retry base", " ms", problems);
  p.cap_ms =
      get_int<millis>(r, "cap_ms", p.cap_ms, 0, 7 * 86'400'000LL, at, "retry cap", " ms", problems);
  if (auto b = r.find("backoff"); b != r.end() && !b->is_null()) {
    const auto backoff = b->is_string() ? b->get<std::string>() : std::string{"?"};
    if (backoff.empty() || backoff == "exponential")
      p.backoff = backoff_kind::exponential;
    else if (backoff == "linear")
      p.backoff = backoff_kind::linear;
    else if (backoff == "none")
      p.backoff = backoff_kind::none;
    else if (backoff == "fibonacci")
      p.backoff = backoff_kind::fibonacci;
    else
      problems.add(at + ": retry backoff is " + b->dump()
                   + ", must be \"none\", \"linear\", \"exponential\" or \"fibonacci\"");
  }
  if (auto j = r.find("jitter"); j != r.end() && !j->is_null()) {
    if (!j->is_number() || !(j->get<double>() >= 0 && j->get<double>() <= 1))
      problems.add(at + ": retry jitter is " + j->dump() + ", must be from 0 to 1");
    else
      p.jitter = j->get<double>();
  }
  if (auto rt = r.find("retryable"); rt != r.end() && !rt->is_null()) {
    if (!rt->is_boolean())
      problems.add(at + ": retry retryable must be true or false");
    else
      p.retryable = rt->get<bool>();
  }
  return p;
}

const char* backoff_name(backoff_kind k) {
  switch (k) {
    case backoff_kind::none: return "none";
    case backoff_kind::linear: return "linear";
    case backoff_kind::exponential: return "exponential";
    case backoff_kind::fibonacci: return "fibonacci";
  }
  return "exponential";
}

/// The steps that lie on dependency cycles, one path per cycle found, each
/// "a -> b -> … -> a" where every step depends on the next, starting at the
/// cycle's earliest declared step. Iterative (pipelines may be long chains).
std::vector<std::vector<int>> find_cycles(const std::vector<step_def>& steps) {
  const int n = static_cast<int>(steps.size());
  auto edges = [&](int v) -> const std::vector<int>& { return steps[v].parents; };
  // Tarjan's strongly connected components.
  std::vector<int> index(n, -1), low(n, 0), component(n, -1);
  std::vector<bool> on_stack(n, false);
  std::vector<int> stack;
  std::vector<std::pair<int, std::size_t>> frames;
  std::vector<std::vector<int>> components;
  int counter = 0;
  auto visit = [&](int v) {
    index[v] = low[v] = counter++;
    stack.push_back(v);
    on_stack[v] = true;
    frames.emplace_back(v, 0);
  };
  for (int root = 0; root < n; ++root) {
    if (index[root] != -1)
      continue;
    visit(root);
    while (!frames.empty()) {
      const int v = frames.back().first;
      const std::size_t pos = frames.back().second;
      if (pos < edges(v).size()) {
        ++frames.back().second;
        const int w = edges(v)[pos];
        if (index[w] == -1)
          visit(w);
        else if (on_stack[w])
          low[v] = std::min(low[v], index[w]);
        continue;
      }
      frames.pop_back();
      if (!frames.empty())
        low[frames.back().first] = std::min(low[frames.back().first], low[v]);
      if (low[v] != index[v])
        continue;
      std::vector<int> members;
      int w = -1;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[w] = false;
        component[w] = static_cast<int>(components.size());
        members.push_back(w);
      } while (w != v);
      components.push_back(std::move(members));
    }
  }

  std::vector<std::vector<int>> cycles;
  for (const auto& members : components) {
    if (members.size() < 2)
      continue;  // a self-dependency is reported on its own and is no edge
    // A path from the earliest declared member back to itself, breadth first.
    const int start = *std::min_element(members.begin(), members.end());
    std::vector<int> parent(n, -1);
    std::vector<int> queue{start};
    int last = -1;
    for (std::size_t q = 0; q < queue.size() && last == -1; ++q) {
      const int u = queue[q];
      for (int w : edges(u)) {
        if (component[w] != component[start])
          continue;
        if (w == start) {
          last = u;
          break;
        }
        if (parent[w] == -1) {
          parent[w] = u;
          queue.push_back(w);
        }
      }
    }
    std::vector<int> path;
    for (int at = last; at != start; at = parent[at])
      path.push_back(at);
    path.push_back(start);
    std::reverse(path.begin(), path.end());
    path.push_back(start);
    cycles.push_back(std::move(path));
  }
  std::sort(cycles.begin(), cycles.end());  // in declaration order of their first steps
  return cycles;
}

void compute_ancestors(pipeline_def& p) {
  const auto n = p.steps.size();
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<bool> mark(n);
    std::vector<int> stack(p.steps[i].parents.begin(), p.steps[i].parents.end());
    while (!stack.empty()) {
      int a = stack.back();
      stack.pop_back();
      if (mark[a])
        continue;
      mark[a] = true;
      for (int parent : p.steps[a].parents)
        stack.push_back(parent);
    }
    for (std::size_t a = 0; a < n; ++a)
      if (mark[a])
        p.steps[i].ancestors.push_back(static_cast<int>(a));
  }
}

/// batch_config of a batch_worker step: kept as given (its instances see it)
/// once its fields are checked.
void parse_batch_config(const json& s, step_def& d, const std::string& at, problem_list& problems) {
  auto it = s.find("batch_config");
  if (it == s.end() || it->is_null())
    return;
  if (!it->is_object()) {
    problems.add(at + ": batch_config must be an object");
    return;
  }
  const auto& c = *it;
  static const char* const known[] = {"batch_size", "parallelism", "cursor_field",
                                      "worker_template", "failure_strategy"};
  check_fields(c, known, at + " batch_config", problems);
  get_int<std::int64_t>(c, "batch_size", 1, 1, 1'000'000'000, at, "batch_config batch_size", "",
                        problems);
  get_int<std::int64_t>(c, "parallelism", 1, 1, 1'000'000, at, "batch_config parallelism", "",
                        problems);
  get_string(c, "cursor_field", at + " batch_config", problems);
  if (auto w = get_string(c, "worker_template", at + " batch_config", problems);
      !w.empty() && w != d.name)
    problems.add(at + ": batch_config worker_template is " + in_quotes(w)
                 + ", must be the step's own name");
  const auto strategy = get_string(c, "failure_strategy", at + " batch_config", problems);
  if (strategy == "continue_on_failure")
    d.tolerates_failure = true;
  else if (!strategy.empty() && strategy != "fail_fast")
    problems.add(at + ": batch_config failure_strategy is " + in_quotes(strategy)
                 + ", must be \"fail_fast\" or \"continue_on_failure\"");
  d.batch_config = c.dump();
}

/// Kahn's order, lowest index first among the steps whose parents are done.
void compute_topo(pipeline_def& p) {
  const auto n = p.steps.size();
  std::vector<int> waiting(n);
  std::vector<int> ready;
  for (std::size_t i = 0; i < n; ++i)
    if ((waiting[i] = static_cast<int>(p.steps[i].parents.size())) == 0)
      ready.push_back(static_cast<int>(i));
  std::make_heap(ready.begin(), ready.end(), std::greater<>());
  while (!ready.empty()) {
    std::pop_heap(ready.begin(), ready.end(), std::greater<>());
    const int i = ready.back();
    ready.pop_back();
    p.topo.push_back(i);
    for (int c : p.steps[i].children)
      if (--waiting[c] == 0) {
        ready.push_back(c);
        std::push_heap(ready.begin(), ready.end(), std::greater<>());
      }
  }
}

/// Parses step `i` (already known to be an object) and checks it, adding
/// its edges; `first` maps each name to its first declaration.
step_def parse_step(const json& s, std::size_t i, const std::string& where,
                    const std::unordered_map<std::string, int>& first, problem_list& problems) {
  step_def d;
  d.name = get_string(s, "name", where + " step #" + std::to_string(i + 1), problems);
  const std::string at = d.name.empty() ? where + " step #" + std::to_string(i + 1)
                                        : where + " step " + in_quotes(d.name);
  static const char* const known[] = {"name",       "handler",      "method",
                                      "config",     "dependencies", "retry",
                                      "timeout_ms", "type",         "batch_config"};
  check_fields(s, known, at, problems);
  if (d.name.empty())
    problems.add(at + ": name is empty");
  else if (const int f = first.at(d.name); f != static_cast<int>(i))
    problems.add(at + ": duplicate step name (also step #" + std::to_string(f + 1) + ")");
  d.handler = get_string(s, "handler", at, problems);
  if (d.handler.empty())
    problems.add(at + ": handler is empty");
  if (auto m = s.find("method"); m != s.end() && !m->is_null()) {
    d.method = get_string(s, "method", at, problems);
    if (m->is_string() && d.method.empty())
      problems.add(at + ": method is empty (leave it out for \"call\")");
    if (d.method.empty())
      d.method = "call";
  }
  if (auto c = s.find("config"); c != s.end() && !c->is_null()) {
    if (!c->is_object())
      problems.add(at + ": config must be a JSON object, not " + c->type_name());
    else
      d.config = c->dump();
  }
  if (auto deps = s.find("dependencies"); deps != s.end() && !deps->is_null()) {
    if (!deps->is_array() || !std::all_of(deps->begin(), deps->end(), [](const json& dep) {
          return dep.is_string();
        })) {
      problems.add(at + ": dependencies must be an array of step names");
    } else {
      for (const auto& dep_json : *deps) {
        auto dep = dep_json.get<std::string>();
        if (std::find(d.dependencies.begin(), d.dependencies.end(), dep) != d.dependencies.end())
          problems.add(at + ": dependency " + in_quotes(dep) + " is listed twice");
        else if (dep == d.name)
          problems.add(at + ": depends on itself");
        else if (auto it = first.find(dep); it == first.end())
          problems.add(at + ": unknown dependency " + in_quotes(dep));
        else
          d.parents.push_back(it->second);
        d.dependencies.push_back(std::move(dep));
      }
    }
  }
  d.retry = parse_retry(s, at, problems);
  d.timeout_ms =
      get_int<millis>(s, "timeout_ms", 0, 0, 7 * 86'400'000LL, at, "timeout", " ms", problems);
  if (const auto type = get_string(s, "type", at, problems); !type.empty()) {
    bool known_kind = false;
    for (auto k : {step_kind::standard, step_kind::decision, step_kind::deferred_convergence,
                   step_kind::batchable, step_kind::batch_worker})
      if (type == to_string(k)) {
        d.kind = k;
        known_kind = true;
      }
    if (!known_kind)
      problems.add(at + ": type is " + in_quotes(type)
                   + ", must be standard, decision, deferred_convergence, batchable or "
                     "batch_worker");
  }
  parse_batch_config(s, d, at, problems);
  return d;
}

/// Checks what the step types ask of the graph, and derives which steps a
/// task creates at once (initially_created) and which see dynamic
/// dependency results.
void check_kinds(pipeline_def& p, const std::string& where, problem_list& problems) {
  auto at = [&](const step_def& d) { return where + " step " + in_quotes(d.name) + ": "; };
  for (const auto& d : p.steps) {
    if (d.kind == step_kind::batch_worker) {
      if (d.parents.size() != 1 || p.steps[d.parents[0]].kind != step_kind::batchable)
        problems.add(at(d) + "a batch_worker must depend on exactly one step, a batchable one");
    } else if (!d.batch_config.empty()) {
      problems.add(at(d) + "batch_config belongs to batch_worker steps");
    }
    if (d.kind == step_kind::batchable
        && std::none_of(d.children.begin(), d.children.end(),
                        [&](int c) { return p.steps[c].kind == step_kind::batch_worker; }))
      problems.add(at(d) + "a batchable step needs a batch_worker step that depends on it");
    if (d.kind == step_kind::deferred_convergence && d.parents.empty())
      problems.add(at(d) + "a deferred_convergence step needs dependencies");
  }
  if (!problems.empty())
    return;
  std::vector<int> depth(p.steps.size(), 0);  // decisions above, on the deepest path
  for (int i : p.topo) {
    auto& d = p.steps[i];
    bool created = d.kind != step_kind::batch_worker;
    for (int parent : d.parents) {
      const auto& pd = p.steps[parent];
      depth[i] = std::max(depth[i], depth[parent] + (pd.kind == step_kind::decision ? 1 : 0));
      // A decision's children wait for its outcome; a batch worker template
      // is there as soon as its batchable step is.
      const bool edge = pd.kind == step_kind::decision ? false
                        : pd.kind == step_kind::batch_worker
                            ? p.steps[pd.parents[0]].initially_created
                            : pd.initially_created;
      created = created && edge;
    }
    d.initially_created = created;
    if (depth[i] > max_decision_depth)
      problems.add(at(d) + "lies below " + std::to_string(depth[i]) + " decision steps, at most "
                   + std::to_string(max_decision_depth) + " are allowed on one path");
    if (d.kind == step_kind::decision || d.kind == step_kind::batchable)
      p.dynamic = true;
  }
  for (auto& d : p.steps) {
    p.initial_steps += d.initially_created ? 1 : 0;
    d.dynamic_dependencies = std::any_of(d.ancestors.begin(), d.ancestors.end(),
                                         [&](int a) { return !p.steps[a].initially_created; });
  }
}

}  // namespace

const char* to_string(step_kind k) {
  switch (k) {
    case step_kind::standard: return "standard";
    case step_kind::decision: return "decision";
    case step_kind::deferred_convergence: return "deferred_convergence";
    case step_kind::batchable: return "batchable";
    case step_kind::batch_worker: return "batch_worker";
  }
  return "standard";
}

std::string pipeline_def::label() const {
  return namespace_name + "/" + name + "@" + version;
}

int pipeline_def::index_of(std::string_view step_name) const {
  for (std::size_t i = 0; i < steps.size(); ++i)
    if (steps[i].name == step_name)
      return static_cast<int>(i);
  return -1;
}

std::shared_ptr<pipeline_def> parse_pipeline(std::string_view text) {
  json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded())
    fail(TK_MALFORMED_JSON, "pipeline: " + json_error(text));
  if (!doc.is_object())
    fail(TK_VALIDATION, "pipeline: must be a JSON object");
  problem_list problems;
  auto p = std::make_shared<pipeline_def>();
  p->namespace_name = get_string(doc, "namespace", "pipeline", problems);
  p->name = get_string(doc, "name", "pipeline", problems);
  p->version = get_string(doc, "version", "pipeline", problems);
  const std::string where = "pipeline " + p->label();
  if (p->namespace_name.empty())
    problems.add(where + ": namespace is empty");
  if (p->name.empty())
    problems.add(where + ": name is empty");
  if (p->version.empty())
    problems.add(where + ": version is empty");
  // "description" is documentation only: accepted, not stored in the canonical form.
  static const char* const known[] = {"namespace", "name",        "version",
                                      "steps",     "description", "input_schema"};
  check_fields(doc, known, where, problems);
  const json* input_schema = nullptr;  // null or absent: none
  if (auto s = doc.find("input_schema"); s != doc.end() && !s->is_null()) {
    std::vector<std::string> schema_problems;
    p->input_schema = json_schema::compile(*s, schema_problems);
    for (auto& problem : schema_problems)
      problems.add(where + ": " + problem);
    input_schema = &*s;
  }

  auto steps = doc.find("steps");
  if (steps == doc.end() || steps->is_null() || (steps->is_array() && steps->empty()))
    problems.add(where + ": has no steps");
  else if (!steps->is_array())
    problems.add(where + ": steps must be an array of step objects");
  else if (steps->size() > max_steps)
    problems.add(where + ": has " + std::to_string(steps->size()) + " steps, at most "
                 + std::to_string(max_steps) + " are allowed");
  else {
    std::unordered_map<std::string, int> first;  // each name's first declaration
    for (std::size_t i = 0; i < steps->size(); ++i)
      if (const auto& s = (*steps)[i]; s.is_object())
        if (auto n = s.find("name"); n != s.end() && n->is_string())
          first.emplace(n->get<std::string>(), static_cast<int>(i));
    for (std::size_t i = 0; i < steps->size(); ++i) {
      const auto& s = (*steps)[i];
      if (!s.is_object()) {
        problems.add(where + " step #" + std::to_string(i + 1) + ": must be an object");
        p->steps.emplace_back();
        continue;
      }
      p->steps.push_back(parse_step(s, i, where, first, problems));
    }
    for (const auto& cycle : find_cycles(p->steps)) {
      std::string path;
      for (int i : cycle) {
        path += (path.empty() ? "" : " -> ") + p->steps[i].name;
        if (path.size() > 300) {
          path += " -> ...";
          break;
        }
      }
      problems.add(where + " step " + in_quotes(p->steps[cycle.front()].name)
                   + ": is on a dependency cycle: " + path + " (each step depends on the next)");
    }
  }
  if (!problems.empty())
    problems.fail();

  for (std::size_t i = 0; i < p->steps.size(); ++i) {
    auto& d = p->steps[i];
    for (int parent : d.parents)
      p->steps[parent].children.push_back(static_cast<int>(i));
    append_json_string(d.result_key, d.name);
    d.result_key += ':';
  }
  compute_ancestors(*p);
  compute_topo(*p);
  check_kinds(*p, where, problems);
  if (!problems.empty())
    problems.fail();

  // Canonical form: every default spelled out, keys in a fixed order.
  json canon = json::object();
  canon["namespace"] = p->namespace_name;
  canon["name"] = p->name;
  canon["version"] = p->version;
  json arr = json::array();
  for (const auto& d : p->steps) {
    json s = json::object();
    s["name"] = d.name;
    s["handler"] = d.handler;
    if (d.method != "call")  // absent for "call": definitions stored before methods compare equal
      s["method"] = d.method;
    s["config"] = json::parse(d.config);
    s["dependencies"] = d.dependencies;
    s["retry"] = {{"max_attempts", d.retry.max_attempts},
                  {"backoff", backoff_name(d.retry.backoff)},
                  {"base_ms", d.retry.base_ms},
                  {"cap_ms", d.retry.cap_ms},
                  {"jitter", d.retry.jitter},
                  {"retryable", d.retry.retryable}};
    s["timeout_ms"] = d.timeout_ms;
    if (d.kind != step_kind::standard)  // absent for the default: older definitions stay equal
      s["type"] = to_string(d.kind);
    if (!d.batch_config.empty())
      s["batch_config"] = json::parse(d.batch_config);
    arr.push_back(std::move(s));
  }
  canon["steps"] = std::move(arr);
  if (input_schema)
    canon["input_schema"] = *input_schema;
  p->canonical_json = canon.dump();
  return p;
}

}  // namespace tasker::core
