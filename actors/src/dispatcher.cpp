#include <tasker/actors/dispatcher.hpp>

#include <algorithm>

namespace tasker::actors {

bool dispatcher::lane::idles() const {
  return queued.empty() && std::find(active.begin(), active.end(), std::size_t{0}) != active.end();
}

dispatcher::lane& dispatcher::add(const std::string& handler, std::size_t instances) {
  auto& l = lanes_[handler];
  l.active.assign(instances, 0);
  l.generation.assign(instances, 0);
  return l;
}

dispatcher::lane* dispatcher::find(const std::string& handler) {
  auto it = lanes_.find(handler);
  return it == lanes_.end() ? nullptr : &it->second;
}

std::optional<dispatcher::assignment> dispatcher::next(lane& l) {
  if (l.queued.empty())
    return std::nullopt;
  auto free = std::find(l.active.begin(), l.active.end(), std::size_t{0});
  if (free == l.active.end())
    return std::nullopt;
  const auto i = static_cast<std::size_t>(free - l.active.begin());
  const auto step_id = l.queued.front();
  l.queued.pop_front();
  ++*free;
  return assignment{step_id, i, l.generation[i]};
}

bool dispatcher::release(lane& l, std::size_t i, std::uint64_t g) {
  if (l.generation[i] != g || l.active[i] == 0)
    return false;
  --l.active[i];
  return true;
}

void dispatcher::replace(lane& l, std::size_t i) {
  ++l.generation[i];
  l.active[i] = 0;
}

std::size_t dispatcher::claim_size(std::size_t load, std::size_t freed) const {
  const auto room = capacity(load) + freed;
  if (room == 0)
    return 0;
  const auto want = std::min(batch_size_, room);
  if (room >= batch_size_ || lanes_.empty())
    return want;
  for (const auto& [_, l] : lanes_)
    if (l.idles())
      return want;
  return 0;
}

}  // namespace tasker::actors
