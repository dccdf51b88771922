// A tiny blocking HTTP/1.1 client for the examples (one request per
// connection, `Connection: close`), so an example can play the outside world
// that calls a worker's HTTP API: a manager's browser, a payment provider's
// webhook. Not for production: no TLS, no redirects, no chunked bodies.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace examples {

struct http_response {
  int status = 0;
  std::string body;
};

/// Sends `method target` with `body` (JSON) to 127.0.0.1:port; `token`, when
/// not empty, goes in `Authorization: Bearer`. Throws std::runtime_error when
/// the server cannot be reached or answers something that is not HTTP.
inline http_response http_request(std::uint16_t port, const std::string& method,
                                  const std::string& target, const std::string& body = "",
                                  const std::string& token = "") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  }
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!token.empty())
    request += "Authorization: Bearer " + token + "\r\n";
  if (!body.empty() || method == "POST")
    request +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  request += "Connection: close\r\n\r\n" + body;
  for (std::size_t sent = 0; sent < request.size();) {
    const auto n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("sending the request failed");
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string answer;
  char buf[4096];
  for (;;) {  // the server closes after answering (Connection: close)
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const auto head_end = answer.find("\r\n\r\n");
  if (answer.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos)
    throw std::runtime_error("not an HTTP answer: " + answer.substr(0, 60));
  http_response r;
  r.status = std::stoi(answer.substr(9, 3));
  r.body = answer.substr(head_end + 4);
  return r;
}

}  // namespace examples
