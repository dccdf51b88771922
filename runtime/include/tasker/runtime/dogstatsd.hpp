// DogStatsD over UDP: the profiler's metrics, sent to a Datadog agent (or
// anything that speaks the protocol). Opt-in: the worker's `statsd` setting.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <tasker/runtime/profiler.hpp>

namespace tasker {

/// A connected, non-blocking UDP socket that sends lines packed into
/// datagrams. Sending never blocks: what the socket cannot take is dropped
/// (and counted), as StatsD clients do.
class dogstatsd_client {
public:
  /// Datagram payload limit: fits a 1500-byte MTU with IPv6 and UDP headers.
  static constexpr std::size_t max_datagram = 1432;

  /// `address` is "host:port" ("[v6addr]:port" for IPv6 literals). Throws
  /// std::invalid_argument when it does not parse or resolve, and
  /// std::runtime_error when no socket can be made.
  explicit dogstatsd_client(const std::string& address);
  ~dogstatsd_client();
  dogstatsd_client(const dogstatsd_client&) = delete;
  dogstatsd_client& operator=(const dogstatsd_client&) = delete;

  /// Sends the lines, as many per datagram as fit in max_datagram bytes
  /// (separated by '\n'; a longer line goes alone). Returns datagrams sent.
  std::size_t send(const std::vector<std::string>& lines);
  /// Datagrams the socket refused (full buffer, nobody listening…).
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

private:
  bool send_one(const std::string& datagram);
  int fd_ = -1;
  std::atomic<std::uint64_t> dropped_{0};
};

/// Splits "host:port" / "[v6]:port"; throws std::invalid_argument.
std::pair<std::string, std::string> split_host_port(std::string_view address);

/// The DogStatsD lines for what changed from `before` to `now`: counters as
/// deltas (`|c`), in-flight as gauges (`|g`), and each histogram's new
/// observations as distribution values (`|d`) at bucket resolution: one
/// value (the bucket's midpoint) per non-empty bucket with sample rate 1/n,
/// which stands for n observations. Tags: `#namespace:…,handler:…`.
std::vector<std::string> dogstatsd_lines(const metrics_snapshot& before,
                                         const metrics_snapshot& now);

}  // namespace tasker
