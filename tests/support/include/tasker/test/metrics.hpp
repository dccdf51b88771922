// Helpers shared by the metrics suites (profiler_test, runtime_metrics_test):
// a UDP socket to receive DogStatsD datagrams, and a line search in
// Prometheus text.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>

#include <doctest/doctest.h>

namespace metrics_test {

/// True when `line` is a whole line of `text`.
inline bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

/// A UDP socket bound to 127.0.0.1 on a free port; closed at the end.
struct udp_listener {
  int fd = -1;
  std::uint16_t port = 0;
  udp_listener() {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
  }
  ~udp_listener() { ::close(fd); }
  udp_listener(const udp_listener&) = delete;
  udp_listener& operator=(const udp_listener&) = delete;
  /// The next datagram, or "" after `timeout` without one.
  std::string receive(std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1)
      return "";
    char buf[65536];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
};

}  // namespace metrics_test
