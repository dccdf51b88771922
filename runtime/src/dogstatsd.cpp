#include <tasker/runtime/dogstatsd.hpp>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace tasker {

namespace {

// A tag value without the characters that end a tag or a line.
std::string tag_value(std::string_view v) {
  std::string out{v};
  for (char& c : out)
    if (c == ',' || c == '|' || c == '#' || c == '\n' || c == '\r' || c == ' ')
      c = '_';
  return out;
}

std::string series_tags(const series_snapshot& s) {
  return "#handler:" + tag_value(s.handler) + ",namespace:" + tag_value(s.namespace_name);
}

std::uint64_t delta(std::uint64_t now, std::uint64_t before) {
  return now > before ? now - before : 0;
}

// A histogram's new observations as distribution values: the midpoint (or
// the upper bound) of each bucket that gained n, with sample rate 1/n (the
// agent counts it n times). `scale` turns the bucket unit into the sent
// unit; `tags` is empty or "#…".
void distribution(std::vector<std::string>& out, std::string_view name, const std::string& tags,
                  const histogram_snapshot& now, const histogram_snapshot* before,
                  const std::uint64_t* bounds, std::size_t bound_count, double scale,
                  bool midpoint = true) {
  const std::string tail = tags.empty() ? "" : "|" + tags;
  for (std::size_t i = 0; i < now.buckets.size(); ++i) {
    const auto prev = before && i < before->buckets.size() ? before->buckets[i] : 0;
    const auto n = delta(now.buckets[i], prev);
    if (n == 0)
      continue;
    double value = 0;
    if (i >= bound_count)
      value = static_cast<double>(bounds[bound_count - 1]);
    else if (!midpoint)
      value = static_cast<double>(bounds[i]);
    else if (i == 0)
      value = static_cast<double>(bounds[0]) / 2;
    else
      value = (static_cast<double>(bounds[i - 1]) + static_cast<double>(bounds[i])) / 2;
    if (n == 1)
      out.push_back(fmt::format("{}:{}|d{}", name, value * scale, tail));
    else
      out.push_back(fmt::format("{}:{}|d|@{:.9g}{}", name, value * scale,
                                1.0 / static_cast<double>(n), tail));
  }
}

}  // namespace

std::pair<std::string, std::string> split_host_port(std::string_view address) {
  std::string host, port;
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':')
      throw std::invalid_argument("statsd address \"" + std::string(address)
                                  + "\" must be host:port or [ipv6]:port");
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string_view::npos || address.find(':') != colon)
      throw std::invalid_argument("statsd address \"" + std::string(address)
                                  + "\" must be host:port or [ipv6]:port");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument("statsd address \"" + std::string(address)
                                + "\" must be host:port with a numeric port");
  return {host, port};
}

dogstatsd_client::dogstatsd_client(const std::string& address) {
  const auto [host, port] = split_host_port(address);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw std::invalid_argument("statsd address \"" + address + "\": " + gai_strerror(rc));
  int err = 0;
  for (auto* a = found; a && fd_ < 0; a = a->ai_next) {
    fd_ = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd_ < 0) {
      err = errno;
      continue;
    }
    // Connected: send() needs no address, and the kernel filters replies.
    if (::connect(fd_, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      ::close(fd_);
      fd_ = -1;
    }
  }
  freeaddrinfo(found);
  if (fd_ < 0)
    throw std::runtime_error("statsd: no UDP socket to " + address + ": " + std::strerror(err));
}

dogstatsd_client::~dogstatsd_client() {
  if (fd_ >= 0)
    ::close(fd_);
}

bool dogstatsd_client::send_one(const std::string& datagram) {
  if (::send(fd_, datagram.data(), datagram.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
      == static_cast<ssize_t>(datagram.size()))
    return true;
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

std::size_t dogstatsd_client::send(const std::vector<std::string>& lines) {
  std::size_t sent = 0;
  std::string datagram;
  datagram.reserve(max_datagram);
  for (const auto& line : lines) {
    const auto needed = datagram.empty() ? line.size() : datagram.size() + 1 + line.size();
    if (!datagram.empty() && needed > max_datagram) {
      sent += send_one(datagram) ? 1 : 0;
      datagram.clear();
    }
    if (!datagram.empty())
      datagram += '\n';
    datagram += line;
  }
  if (!datagram.empty())
    sent += send_one(datagram) ? 1 : 0;
  return sent;
}

std::vector<std::string> dogstatsd_lines(const metrics_snapshot& before,
                                         const metrics_snapshot& now) {
  std::vector<std::string> out;
  const auto* dur = duration_buckets::bounds.data();
  const auto dur_n = duration_buckets::count;
  for (const auto& s : now.series) {
    const auto* b = before.find(s.namespace_name, s.handler);
    const auto tags = series_tags(s);
    auto counter = [&](std::string_view name, std::uint64_t value, std::uint64_t prev,
                       const std::string& extra) {
      if (const auto d = delta(value, prev))
        out.push_back(fmt::format("{}:{}|c|{}{}", name, d, tags, extra));
    };
    counter("tasker.steps.claimed", s.claimed, b ? b->claimed : 0, "");
    counter("tasker.steps.completed", s.succeeded, b ? b->succeeded : 0, ",outcome:succeeded");
    counter("tasker.steps.completed", s.failed, b ? b->failed : 0, ",outcome:failed");
    counter("tasker.steps.completed", s.timed_out, b ? b->timed_out : 0, ",outcome:timed_out");
    counter("tasker.steps.completed", s.waited, b ? b->waited : 0, ",outcome:waited");
    for (const auto& [type, n] : s.failures) {
      std::uint64_t prev = 0;
      if (b)
        for (const auto& [t, m] : b->failures)
          if (t == type)
            prev = m;
      counter("tasker.steps.failed", n, prev, ",error_type:" + tag_value(type));
    }
    out.push_back(fmt::format("tasker.steps.in_flight:{}|g|{}", s.in_flight, tags));
    distribution(out, "tasker.step.queue_wait_seconds", tags, s.queue_wait,
                 b ? &b->queue_wait : nullptr, dur, dur_n, 1e-9);
    distribution(out, "tasker.step.execution_duration_seconds", tags, s.run_time,
                 b ? &b->run_time : nullptr, dur, dur_n, 1e-9);
    distribution(out, "tasker.step.cpu_seconds", tags, s.cpu_time, b ? &b->cpu_time : nullptr, dur,
                 dur_n, 1e-9);
  }
  if (const auto d = delta(now.claimed, before.claimed))
    out.push_back(fmt::format("tasker.worker.steps_claimed:{}|c", d));
  if (const auto d = delta(now.completed, before.completed))
    out.push_back(fmt::format("tasker.worker.steps_completed:{}|c", d));
  // Batch sizes: bucket midpoints would invent sizes; the upper bound of a
  // power-of-two bucket is the usual batch (the configured size) anyway.
  distribution(out, "tasker.poll.batch_size", "", now.poll_batch, &before.poll_batch,
               size_buckets::bounds.data(), size_buckets::count, 1.0, false);
  static constexpr std::string_view calls[] = {"poll", "complete", "complete_and_poll"};
  for (std::size_t c = 0; c < now.core_calls.size(); ++c)
    distribution(out, "tasker.core.call_duration_seconds", "#call:" + std::string(calls[c]),
                 now.core_calls[c], &before.core_calls[c], dur, dur_n, 1e-9);
  return out;
}

}  // namespace tasker
