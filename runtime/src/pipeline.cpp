#include <tasker/runtime/pipeline.hpp>

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <utility>

namespace tasker {

namespace {

// The core's limits (core/src/pipeline.cpp): checked here too, so that a
// pipeline that passes check() is one the core accepts.
constexpr std::size_t max_steps = 10000;
constexpr int max_attempts_limit = 1000;
constexpr std::int64_t max_base_ms = 86'400'000;       // one day
constexpr std::int64_t max_cap_ms = 7 * 86'400'000LL;  // one week
constexpr std::int64_t max_timeout_ms = 7 * 86'400'000LL;

std::string in_quotes(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

/// The steps that lie on dependency cycles, one list per cycle found, each a
/// path "a -> b -> … -> a" where every step depends on the next. `edges[i]`
/// are the indexes step i depends on.
std::vector<std::vector<int>> find_cycles(const std::vector<std::vector<int>>& edges) {
  const int n = static_cast<int>(edges.size());
  // Tarjan's strongly connected components, iterative (pipelines may be long chains).
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
      if (pos < edges[v].size()) {
        ++frames.back().second;
        const int w = edges[v][pos];
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
      continue;  // self-dependencies are reported on their own and are not edges here
    // A path from the earliest declared member back to itself, by breadth-first search.
    const int start = *std::min_element(members.begin(), members.end());
    std::vector<int> parent(n, -1);
    std::vector<int> queue{start};
    int last = -1;
    for (std::size_t q = 0; q < queue.size() && last == -1; ++q) {
      const int u = queue[q];
      for (int w : edges[u]) {
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
  return cycles;
}

}  // namespace

pipeline::pipeline(std::string namespace_name, std::string name, std::string version)
  : namespace_(std::move(namespace_name)), name_(std::move(name)), version_(std::move(version)) {
}

pipeline& pipeline::step(std::string name, std::string handler, step_options options) {
  steps_.push_back(step_spec{std::move(name), std::move(handler), std::move(options)});
  return *this;
}

const step_spec* pipeline::find(std::string_view name) const {
  for (const auto& s : steps_)
    if (s.name == name)
      return &s;
  return nullptr;
}

std::vector<std::string> pipeline::validate() const {
  std::vector<std::string> problems;
  const std::string where = "pipeline " + namespace_ + "/" + name_ + "@" + version_;
  if (namespace_.empty())
    problems.push_back(where + ": namespace is empty");
  if (name_.empty())
    problems.push_back(where + ": name is empty");
  if (version_.empty())
    problems.push_back(where + ": version is empty");
  if (steps_.empty())
    problems.push_back(where + ": has no steps");
  if (steps_.size() > max_steps)
    problems.push_back(where + ": has " + std::to_string(steps_.size()) + " steps, at most "
                       + std::to_string(max_steps) + " are allowed");

  // First declaration of each name; later ones are duplicates.
  std::unordered_map<std::string_view, int> index;
  for (std::size_t i = 0; i < steps_.size(); ++i)
    index.emplace(steps_[i].name, static_cast<int>(i));

  std::vector<std::vector<int>> edges(steps_.size());
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const step_spec& s = steps_[i];
    const std::string at = s.name.empty() ? where + " step #" + std::to_string(i + 1)
                                          : where + " step " + in_quotes(s.name);
    if (s.name.empty())
      problems.push_back(at + ": name is empty");
    else if (const int first = index.at(s.name); first != static_cast<int>(i))
      problems.push_back(at + ": duplicate step name (also step #" + std::to_string(first + 1)
                         + ")");
    if (s.handler.empty())
      problems.push_back(at + ": handler is empty");

    const step_options& o = s.options;
    if (!o.config.is_object() && !o.config.is_null())
      problems.push_back(at + ": config must be a JSON object, not " + o.config.type_name());

    for (std::size_t d = 0; d < o.dependencies.size(); ++d) {
      const std::string& dep = o.dependencies[d];
      if (std::find(o.dependencies.begin(), o.dependencies.begin() + static_cast<long>(d), dep)
          != o.dependencies.begin() + static_cast<long>(d)) {
        problems.push_back(at + ": dependency " + in_quotes(dep) + " is listed twice");
        continue;
      }
      if (dep == s.name) {
        problems.push_back(at + ": depends on itself");
        continue;
      }
      auto it = index.find(dep);
      if (it == index.end()) {
        problems.push_back(at + ": unknown dependency " + in_quotes(dep));
        continue;
      }
      edges[i].push_back(it->second);
    }

    if (const auto& r = o.retry_settings) {
      if (r->max_attempts < 1 || r->max_attempts > max_attempts_limit)
        problems.push_back(at + ": retry max_attempts is " + std::to_string(r->max_attempts)
                           + ", must be 1 to " + std::to_string(max_attempts_limit));
      if (r->backoff != "none" && r->backoff != "linear" && r->backoff != "exponential")
        problems.push_back(at + ": retry backoff is " + in_quotes(r->backoff)
                           + ", must be \"none\", \"linear\" or \"exponential\"");
      if (r->base.count() < 0 || r->base.count() > max_base_ms)
        problems.push_back(at + ": retry base is " + std::to_string(r->base.count())
                           + " ms, must be 0 to " + std::to_string(max_base_ms) + " ms");
      if (r->cap.count() < 0 || r->cap.count() > max_cap_ms)
        problems.push_back(at + ": retry cap is " + std::to_string(r->cap.count())
                           + " ms, must be 0 to " + std::to_string(max_cap_ms) + " ms");
      if (!(r->jitter >= 0.0 && r->jitter <= 1.0))  // also rejects NaN
        problems.push_back(at + ": retry jitter is " + std::to_string(r->jitter)
                           + ", must be from 0 to 1");
    }
    if (o.time_limit.count() < 0 || o.time_limit.count() > max_timeout_ms)
      problems.push_back(at + ": timeout is " + std::to_string(o.time_limit.count())
                         + " ms, must be 0 to " + std::to_string(max_timeout_ms) + " ms");
  }

  for (const auto& cycle : find_cycles(edges)) {
    std::string path;
    for (int i : cycle)
      path += (path.empty() ? "" : " -> ") + steps_[i].name;
    problems.push_back(where + " step " + in_quotes(steps_[cycle.front()].name)
                       + ": is on a dependency cycle: " + path
                       + " (each step depends on the next)");
  }
  return problems;
}

void pipeline::check() const {
  const auto problems = validate();
  if (problems.empty())
    return;
  std::string msg = problems.front();
  for (std::size_t i = 1; i < problems.size(); ++i)
    msg += "\n" + problems[i];
  throw pipeline_error(msg);
}

std::string pipeline::to_core_json() const {
  check();
  json steps = json::array();
  for (const auto& s : steps_) {
    const step_options& o = s.options;
    json j = {{"name", s.name},
              {"handler", s.handler},
              {"config", o.config.is_null() ? json::object() : o.config},
              {"dependencies", o.dependencies},
              {"timeout_ms", o.time_limit.count()}};
    if (const auto& r = o.retry_settings)
      j["retry"] = {
          {"max_attempts", r->max_attempts}, {"backoff", r->backoff}, {"base_ms", r->base.count()},
          {"cap_ms", r->cap.count()},        {"jitter", r->jitter},   {"retryable", r->retryable}};
    steps.push_back(std::move(j));
  }
  const json doc = {{"namespace", namespace_},
                    {"name", name_},
                    {"version", version_},
                    {"steps", std::move(steps)}};
  return doc.dump();
}

}  // namespace tasker
