#include "model/pipeline.hpp"

#include <algorithm>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "abi/error.hpp"
#include "util/json.hpp"

namespace tasker::core {

namespace {

using nlohmann::json;

std::string get_string(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null())
    return {};
  if (!it->is_string())
    fail(TK_VALIDATION, where + ": \"" + key + "\" must be a string");
  return it->get<std::string>();
}

template <class Int>
Int get_int(const json& obj, const char* key, Int fallback, Int min, Int max,
            const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null())
    return fallback;
  if (!it->is_number_integer())
    fail(TK_VALIDATION, where + ": \"" + key + "\" must be an integer");
  auto v = it->get<std::int64_t>();
  if (v < static_cast<std::int64_t>(min) || v > static_cast<std::int64_t>(max))
    fail(TK_VALIDATION, where + ": \"" + key + "\" must be between " + std::to_string(min) + " and "
                            + std::to_string(max));
  return static_cast<Int>(v);
}

retry_policy parse_retry(const json& step, const std::string& where) {
  retry_policy p;
  auto it = step.find("retry");
  if (it == step.end() || it->is_null())
    return p;
  if (!it->is_object())
    fail(TK_VALIDATION, where + ": \"retry\" must be an object");
  const auto& r = *it;
  const std::string rw = where + " retry";
  for (auto& [key, _] : r.items()) {
    static const char* known[] = {"max_attempts", "backoff", "base_ms",
                                  "cap_ms",       "jitter",  "retryable"};
    if (std::none_of(std::begin(known), std::end(known), [&](const char* k) { return key == k; }))
      fail(TK_VALIDATION, rw + ": unknown field \"" + key + "\"");
  }
  p.max_attempts = get_int<int>(r, "max_attempts", p.max_attempts, 1, 1000, rw);
  p.base_ms = get_int<millis>(r, "base_ms", p.base_ms, 0, 86'400'000, rw);
  p.cap_ms = get_int<millis>(r, "cap_ms", p.cap_ms, 0, 7 * 86'400'000LL, rw);
  auto backoff = get_string(r, "backoff", rw);
  if (backoff.empty() || backoff == "exponential")
    p.backoff = backoff_kind::exponential;
  else if (backoff == "linear")
    p.backoff = backoff_kind::linear;
  else if (backoff == "none")
    p.backoff = backoff_kind::none;
  else
    fail(TK_VALIDATION,
         rw + ": backoff must be none, linear or exponential, not \"" + backoff + "\"");
  if (auto j = r.find("jitter"); j != r.end() && !j->is_null()) {
    if (!j->is_number() || j->get<double>() < 0 || j->get<double>() > 1)
      fail(TK_VALIDATION, rw + ": jitter must be a number from 0 to 1");
    p.jitter = j->get<double>();
  }
  if (auto rt = r.find("retryable"); rt != r.end() && !rt->is_null()) {
    if (!rt->is_boolean())
      fail(TK_VALIDATION, rw + ": retryable must be true or false");
    p.retryable = rt->get<bool>();
  }
  return p;
}

const char* backoff_name(backoff_kind k) {
  switch (k) {
    case backoff_kind::none: return "none";
    case backoff_kind::linear: return "linear";
    case backoff_kind::exponential: return "exponential";
  }
  return "exponential";
}

// Kahn's algorithm; on a cycle, names a step that lies on it.
void check_acyclic(const pipeline_def& p) {
  const auto n = p.steps.size();
  std::vector<int> indegree(n);
  for (std::size_t i = 0; i < n; ++i)
    indegree[i] = static_cast<int>(p.steps[i].parents.size());
  std::vector<int> queue;
  for (std::size_t i = 0; i < n; ++i)
    if (indegree[i] == 0)
      queue.push_back(static_cast<int>(i));
  std::size_t seen = 0;
  while (seen < queue.size()) {
    int i = queue[seen++];
    for (int c : p.steps[i].children)
      if (--indegree[c] == 0)
        queue.push_back(c);
  }
  if (seen == n)
    return;
  // Walk parents among the unprocessed steps until one repeats: it is on a cycle.
  int at = 0;
  while (indegree[at] == 0)
    ++at;
  std::vector<bool> visited(n);
  while (!visited[at]) {
    visited[at] = true;
    for (int parent : p.steps[at].parents)
      if (indegree[parent] > 0) {
        at = parent;
        break;
      }
  }
  std::string cycle = p.steps[at].name;
  for (int cur = at;;) {
    int next = -1;
    for (int parent : p.steps[cur].parents)
      if (indegree[parent] > 0) {
        next = parent;
        break;
      }
    cur = next;
    cycle += " <- " + p.steps[cur].name;
    if (cur == at || cycle.size() > 300)
      break;
  }
  fail(TK_VALIDATION, "step \"" + p.steps[at].name + "\" is on a dependency cycle: " + cycle);
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

}  // namespace

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
  auto p = std::make_shared<pipeline_def>();
  p->namespace_name = get_string(doc, "namespace", "pipeline");
  p->name = get_string(doc, "name", "pipeline");
  p->version = get_string(doc, "version", "pipeline");
  if (p->namespace_name.empty())
    fail(TK_VALIDATION, "pipeline: \"namespace\" is required");
  if (p->name.empty())
    fail(TK_VALIDATION, "pipeline: \"name\" is required");
  if (p->version.empty())
    fail(TK_VALIDATION,
         "pipeline " + p->namespace_name + "/" + p->name + ": \"version\" is required");
  const std::string where = "pipeline " + p->label();
  for (auto& [key, _] : doc.items()) {
    // "description" is documentation only: accepted, not stored in the canonical form.
    static const char* known[] = {"namespace", "name", "version", "steps", "description"};
    if (std::none_of(std::begin(known), std::end(known), [&](const char* k) { return key == k; }))
      fail(TK_VALIDATION, where + ": unknown field \"" + key + "\"");
  }
  auto steps = doc.find("steps");
  if (steps == doc.end() || !steps->is_array() || steps->empty())
    fail(TK_VALIDATION, where + ": \"steps\" must be a non-empty array");
  if (steps->size() > 10000)
    fail(TK_VALIDATION, where + ": more than 10000 steps");

  std::unordered_map<std::string, int> index;
  for (const auto& s : *steps) {
    const std::string at = where + " step #" + std::to_string(p->steps.size() + 1);
    if (!s.is_object())
      fail(TK_VALIDATION, at + ": must be an object");
    step_def d;
    d.name = get_string(s, "name", at);
    if (d.name.empty())
      fail(TK_VALIDATION, at + ": step name is empty");
    const std::string sw = where + " step \"" + d.name + "\"";
    for (auto& [key, _] : s.items()) {
      static const char* known[] = {"name",         "handler", "config",
                                    "dependencies", "retry",   "timeout_ms"};
      if (std::none_of(std::begin(known), std::end(known), [&](const char* k) { return key == k; }))
        fail(TK_VALIDATION, sw + ": unknown field \"" + key + "\"");
    }
    d.handler = get_string(s, "handler", sw);
    if (d.handler.empty())
      fail(TK_VALIDATION, sw + ": handler is empty");
    if (auto c = s.find("config"); c != s.end() && !c->is_null()) {
      if (!c->is_object())
        fail(TK_VALIDATION, sw + ": \"config\" must be an object");
      d.config = c->dump();
    }
    if (auto deps = s.find("dependencies"); deps != s.end() && !deps->is_null()) {
      if (!deps->is_array())
        fail(TK_VALIDATION, sw + ": \"dependencies\" must be an array of step names");
      for (const auto& dep : *deps) {
        if (!dep.is_string())
          fail(TK_VALIDATION, sw + ": \"dependencies\" must be an array of step names");
        d.dependencies.push_back(dep.get<std::string>());
      }
    }
    d.retry = parse_retry(s, sw);
    d.timeout_ms = get_int<millis>(s, "timeout_ms", 0, 0, 7 * 86'400'000LL, sw);
    if (!index.emplace(d.name, static_cast<int>(p->steps.size())).second)
      fail(TK_VALIDATION, where + ": duplicate step name \"" + d.name + "\"");
    d.result_key.clear();
    append_json_string(d.result_key, d.name);
    d.result_key += ':';
    p->steps.push_back(std::move(d));
  }
  for (std::size_t i = 0; i < p->steps.size(); ++i) {
    auto& d = p->steps[i];
    for (const auto& dep : d.dependencies) {
      auto it = index.find(dep);
      if (it == index.end())
        fail(TK_VALIDATION, where + " step \"" + d.name + "\": unknown dependency \"" + dep + "\"");
      if (std::find(d.parents.begin(), d.parents.end(), it->second) != d.parents.end())
        fail(TK_VALIDATION,
             where + " step \"" + d.name + "\": dependency \"" + dep + "\" listed twice");
      d.parents.push_back(it->second);
      p->steps[it->second].children.push_back(static_cast<int>(i));
    }
  }
  check_acyclic(*p);
  compute_ancestors(*p);

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
    s["config"] = json::parse(d.config);
    s["dependencies"] = d.dependencies;
    s["retry"] = {{"max_attempts", d.retry.max_attempts},
                  {"backoff", backoff_name(d.retry.backoff)},
                  {"base_ms", d.retry.base_ms},
                  {"cap_ms", d.retry.cap_ms},
                  {"jitter", d.retry.jitter},
                  {"retryable", d.retry.retryable}};
    s["timeout_ms"] = d.timeout_ms;
    arr.push_back(std::move(s));
  }
  canon["steps"] = std::move(arr);
  p->canonical_json = canon.dump();
  return p;
}

}  // namespace tasker::core
