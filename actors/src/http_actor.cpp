// The only translation unit with Beast in it (a CAF+Beast TU costs ~50 s).
//
// Threads: every session, the acceptor and the counters live on the I/O
// thread. A request that needs the core goes as an http_call to the bridge
// actor (detached, so blocking handlers on the scheduler cannot starve it),
// which calls the task service (the core, directly) or, for readiness, asks
// the poller, and posts the answer back through the `gate`; the gate drops it
// once the server has stopped. Sessions are owned by the
// server's registry and their pending Asio handlers only; the actors hold
// weak pointers, so no socket outlives the io_context on another thread.
#include <tasker/actors/http_actor.hpp>

#include "detail/http_routes.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <nlohmann/json.hpp>
#include <pthread.h>
#include <spdlog/spdlog.h>

namespace tasker::actors {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;
using request_t = http::request<http::string_body>;
using response_t = http::response<http::string_body>;
using namespace detail;

// ---- the server's plumbing ------------------------------------------------------

/// Posts to the I/O thread while the server runs; drops afterwards.
struct gate {
  std::mutex mu;
  asio::io_context* ioc = nullptr;

  template <class F>
  void post(F&& f) {
    std::lock_guard<std::mutex> g{mu};
    if (ioc)
      asio::post(*ioc, std::forward<F>(f));
  }
  void close() {
    std::lock_guard<std::mutex> g{mu};
    ioc = nullptr;
  }
};

// The bridge: one long-lived actor on a thread of its own (detached), so
// that requests reach the core even while blocking handlers hold every
// scheduler thread, and the I/O thread never waits for the store. It makes
// the task service's calls (which block for one store call each) and asks
// the poller whether it is ready.
// (The port is only there because CAF 0.17.6 binds a reference to a null
// argument tuple when a function actor is spawned without arguments, which
// UBSan reports.)
caf::behavior bridge(caf::event_based_actor* self, std::uint16_t port) {
  spdlog::debug("http: bridge of port {} up", port);
  return {[self](http_call& call) { call.run(self); }};
}

// The signal hook runs here, on a scheduler thread: it may take a while
// without holding up the bridge.
void run_hook(caf::event_based_actor* self,
              const std::function<void(caf::event_based_actor*)>& call) {
  call(self);
}

class session;

}  // namespace

struct http_server::impl {
  caf::actor_system& sys;
  const task_service& tasks;
  poller_actor poller;  ///< may be null: readiness is then the store's
  http_config cfg;
  caf::actor bridge_actor;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  asio::steady_timer accept_retry{ioc};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::shared_ptr<gate> gate_ = std::make_shared<gate>();
  std::thread thread;
  std::uint16_t bound_port = 0;
  // The I/O thread's own.
  std::unordered_map<std::uint64_t, std::shared_ptr<session>> sessions;
  std::uint64_t next_session = 0;
  bool stopping = false;
  http_counters counters;
  // stop() waits here for the sessions to end.
  std::mutex mu;
  std::condition_variable cv;
  bool drained = false;
  bool stopped = false;
  bool clean = true;

  impl(caf::actor_system& s, const task_service& t, poller_actor p, http_config c);
  void accept();
  void begin_stop();
  void session_ended(std::uint64_t id);
  void check_drained();
  /// Answers `p` off the I/O thread; `deliver` runs on the I/O thread later.
  void ask(plan& p, std::function<void(answer)> deliver);
  answer metrics();
};

namespace {

/// One connection: reads requests (up to max_pipelined ahead of their
/// answers), answers them in order, times out when idle.
class session : public std::enable_shared_from_this<session> {
public:
  session(http_server::impl& srv, tcp::socket socket, std::uint64_t id)
    : srv_(srv), id_(id), stream_(std::move(socket)), idle_timer_(srv.ioc) {}

  void start() { read_next(); }

  /// The server stops: idle connections close now, busy ones after their answers.
  void begin_stop() {
    stopping_ = true;
    if (queue_.empty()) {
      finish();
      return;
    }
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_receive, ec);  // ends a read ahead
  }

  /// The answer for request `seq` is ready (I/O thread).
  void deliver(std::uint64_t seq, answer a) {
    if (finished_ || queue_.empty() || seq < queue_.front().seq
        || seq - queue_.front().seq >= queue_.size())
      return;
    auto& s = queue_[static_cast<std::size_t>(seq - queue_.front().seq)];
    srv_.counters.count(s.what, a.status);
    s.res.result(a.status);
    s.res.version(s.version);
    s.res.set(http::field::server, "tasker");
    s.res.set(http::field::content_type,
              a.prometheus ? "text/plain; version=0.0.4; charset=utf-8" : "application/json");
    if (a.allow)
      s.res.set(http::field::allow, a.allow);
    if (a.status == 401)
      s.res.set(http::field::www_authenticate, "Bearer");
    s.res.body() = std::move(a.body);
    s.res.keep_alive(s.keep_alive && !a.close);
    s.res.prepare_payload();
    s.ready = true;
    write_next();
  }

private:
  struct slot {
    std::uint64_t seq = 0;
    route what = route::other;
    unsigned version = 11;
    bool keep_alive = false;
    bool ready = false;
    response_t res;
  };

  void read_next() {
    if (finished_ || reading_ || no_more_reads_ || stopping_
        || queue_.size() >= srv_.cfg.max_pipelined)
      return;
    reading_ = true;
    if (buffer_.size() > 0) {
      read_request();
      return;
    }
    // Wait for the next request's first byte without a deadline; the idle
    // timer closes the connection when it owes nothing and gets nothing.
    waiting_first_ = true;
    stream_.expires_never();
    if (queue_.empty())
      arm_idle();
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->on_first_bytes(ec, n);
                            });
  }

  void on_first_bytes(beast::error_code ec, std::size_t n) {
    waiting_first_ = false;
    ++idle_generation_;
    idle_timer_.cancel();
    if (finished_)
      return;
    if (ec) {
      reading_ = false;
      read_failed(ec);
      return;
    }
    buffer_.commit(n);
    read_request();
  }

  void read_request() {
    parser_.emplace();
    parser_->body_limit(srv_.cfg.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(srv_.cfg.max_header_bytes));
    stream_.expires_after(srv_.cfg.read_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  /// A body over the limit was refused with the header (its Content-Length).
  /// A client that waits for "100 Continue" (curl does, for bodies over 1
  /// KiB) gets it when no answer is owed before it; otherwise it sends the
  /// body after its own short wait.
  void on_header(beast::error_code ec) {
    if (ec || finished_ || parser_->is_done()) {
      on_read(ec);
      return;
    }
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue") && queue_.empty()
        && !writing_) {
      static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
      writing_ = true;
      asio::async_write(stream_, asio::buffer(go_on.data(), go_on.size()),
                        [self = shared_from_this()](beast::error_code e, std::size_t) {
                          self->writing_ = false;
                          if (e || self->finished_) {
                            self->reading_ = false;
                            self->finish();
                            return;
                          }
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    reading_ = false;
    if (finished_)
      return;
    if (ec == http::error::body_limit) {
      refuse(413,
             "the body is over the limit of " + std::to_string(srv_.cfg.max_body_bytes) + " bytes");
      return;
    }
    if (ec == http::error::header_limit) {
      refuse(431, "the header is over the limit of " + std::to_string(srv_.cfg.max_header_bytes)
                      + " bytes");
      return;
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category()
        && ec != http::error::end_of_stream && ec != http::error::partial_message) {
      refuse(400, "malformed request: " + ec.message());
      return;
    }
    if (ec) {
      read_failed(ec);
      return;
    }
    auto req = parser_->release();
    parser_.reset();
    handle(req);
    read_next();
  }

  /// The client will send nothing more (closed, reset, timed out).
  void read_failed(beast::error_code ec) {
    if (ec == beast::error::timeout || queue_.empty()) {
      finish();
      return;
    }
    no_more_reads_ = true;  // half-closed: the answers owed still go out
  }

  /// Answers a request that could not be read, then closes.
  void refuse(unsigned status, const std::string& message) {
    no_more_reads_ = true;
    slot s;
    s.seq = next_seq_++;
    s.keep_alive = false;
    if (parser_)
      s.version = parser_->get().version() == 10 ? 10 : 11;
    queue_.push_back(std::move(s));
    deliver(queue_.back().seq, error_answer(status, message, true));
  }

  void handle(const request_t& req) {
    slot s;
    s.seq = next_seq_++;
    s.version = req.version();
    s.keep_alive = req.keep_alive();
    if (!s.keep_alive)
      no_more_reads_ = true;
    const auto auth = req[http::field::authorization];
    auto p = route_request(srv_.cfg, {{req.method_string().data(), req.method_string().size()},
                                      {req.target().data(), req.target().size()},
                                      {auth.data(), auth.size()},
                                      req.body()});
    s.what = p.what;
    const auto seq = s.seq;
    queue_.push_back(std::move(s));
    switch (p.by) {
      case responder::now: deliver(seq, std::move(p.now)); break;
      case responder::metrics: deliver(seq, srv_.metrics()); break;
      default: {
        std::weak_ptr<session> weak = shared_from_this();
        srv_.ask(p, [weak, seq](answer a) {
          if (auto me = weak.lock())
            me->deliver(seq, std::move(a));
        });
      }
    }
  }

  void write_next() {
    if (writing_ || finished_ || queue_.empty() || !queue_.front().ready)
      return;
    auto& res = queue_.front().res;
    if (stopping_ && queue_.size() == 1)
      res.keep_alive(false);  // the last answer before the server goes
    writing_ = true;
    stream_.expires_after(srv_.cfg.read_timeout);
    http::async_write(stream_, res, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_write(ec);
    });
  }

  void on_write(beast::error_code ec) {
    writing_ = false;
    if (finished_)
      return;
    if (ec) {
      finish();
      return;
    }
    const bool close = queue_.front().res.need_eof();
    queue_.pop_front();
    if (close || (queue_.empty() && (no_more_reads_ || stopping_) && !reading_)) {
      close_gracefully();
      return;
    }
    write_next();
    if (queue_.empty() && waiting_first_)
      arm_idle();
    read_next();
  }

  /// Sends FIN, then reads and drops what the client still sends (briefly),
  /// so that unread input does not turn the close into a reset that could
  /// destroy the last answer before the client reads it.
  void close_gracefully() {
    no_more_reads_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec || stopping_ || reading_) {
      finish();
      return;
    }
    reading_ = true;
    stream_.expires_after(std::min(srv_.cfg.read_timeout, std::chrono::milliseconds{1000}));
    drain();
  }

  void drain() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec || self->finished_)
                                self->finish();
                              else
                                self->drain();
                            });
  }

  void arm_idle() {
    const auto generation = ++idle_generation_;
    idle_timer_.expires_after(srv_.cfg.idle_timeout);
    idle_timer_.async_wait([self = shared_from_this(), generation](beast::error_code ec) {
      if (ec || generation != self->idle_generation_ || self->finished_)
        return;
      if (self->waiting_first_ && self->queue_.empty())
        self->finish();
    });
  }

  void finish() {
    if (finished_)
      return;
    finished_ = true;
    idle_timer_.cancel();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    srv_.session_ended(id_);
  }

  http_server::impl& srv_;
  std::uint64_t id_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  asio::steady_timer idle_timer_;
  std::uint64_t idle_generation_ = 0;
  std::deque<slot> queue_;  ///< answers owed, in request order
  std::uint64_t next_seq_ = 0;
  bool reading_ = false;
  bool waiting_first_ = false;
  bool writing_ = false;
  bool no_more_reads_ = false;
  bool stopping_ = false;
  bool finished_ = false;
};

}  // namespace

http_server::impl::impl(caf::actor_system& s, const task_service& t, poller_actor p, http_config c)
  : sys(s), tasks(t), poller(std::move(p)), cfg(std::move(c)) {
  cfg.max_pipelined = std::max<std::size_t>(cfg.max_pipelined, 1);
  beast::error_code ec;
  const auto address = asio::ip::make_address(cfg.bind, ec);
  if (ec)
    throw std::runtime_error("http: \"" + cfg.bind + "\" is not an IP address");
  const tcp::endpoint ep{address, cfg.port};
  auto fail = [&](const char* what) {
    throw std::runtime_error("http: cannot " + std::string(what) + " " + cfg.bind + ":"
                             + std::to_string(cfg.port) + ": " + ec.message());
  };
  if (acceptor.open(ep.protocol(), ec); ec)
    fail("open a socket for");
  if (acceptor.set_option(asio::socket_base::reuse_address(true), ec); ec)
    fail("set SO_REUSEADDR on");
  if (acceptor.bind(ep, ec); ec)
    fail("bind");
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec)
    fail("listen on");
  bound_port = acceptor.local_endpoint().port();
  gate_->ioc = &ioc;
  bridge_actor = sys.spawn<caf::detached>(bridge, bound_port);
}

void http_server::impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (stopping || !acceptor.is_open())
      return;
    if (ec) {
      // Out of descriptors and the like: try again a little later, not in a busy loop.
      spdlog::warn("http: accept failed: {}", ec.message());
      accept_retry.expires_after(std::chrono::milliseconds{100});
      accept_retry.async_wait([this](beast::error_code e) {
        if (!e)
          accept();
      });
      return;
    }
    if (sessions.size() >= cfg.max_connections) {
      ++counters.rejected_connections;
      socket.close(ec);
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      const auto id = next_session++;
      auto s = std::make_shared<session>(*this, std::move(socket), id);
      sessions.emplace(id, s);
      s->start();
    }
    accept();
  });
}

void http_server::impl::begin_stop() {
  stopping = true;
  beast::error_code ec;
  acceptor.close(ec);
  accept_retry.cancel();
  std::vector<std::shared_ptr<session>> all;
  all.reserve(sessions.size());
  for (auto& [_, s] : sessions)
    all.push_back(s);
  for (auto& s : all)
    s->begin_stop();
  check_drained();
}

void http_server::impl::session_ended(std::uint64_t id) {
  sessions.erase(id);
  check_drained();
}

void http_server::impl::check_drained() {
  if (!stopping || !sessions.empty())
    return;
  std::lock_guard<std::mutex> g{mu};
  drained = true;
  cv.notify_all();
}

answer http_server::impl::metrics() {
  answer a;
  a.prometheus = true;
  if (cfg.metrics) {
    try {
      a.body = cfg.metrics();
    } catch (const std::exception& e) {
      spdlog::error("http: the metrics callback failed: {}", e.what());
    }
  }
  a.body += counters.render(sessions.size());
  return a;
}

void http_server::impl::ask(plan& p, std::function<void(answer)> deliver) {
  // The answer hops back to the I/O thread through the gate.
  auto reply = [g = gate_, deliver = std::move(deliver)](answer a) {
    g->post([deliver, a = std::move(a)]() mutable { deliver(std::move(a)); });
  };
  const auto what = p.what;
  const auto timeout = cfg.ready_timeout;
  auto failed = [reply, what, timeout](const caf::error& e) {
    reply(from_error(e, what, timeout));
  };
  // The core's JSON as it is, 200.
  auto json_text = [reply](std::string text) {
    answer a;
    a.body = std::move(text);
    reply(std::move(a));
  };
  const auto* service = &tasks;  // outlives the bridge (see http_server)
  std::function<void(caf::event_based_actor*)> call;
  switch (p.by) {
    case responder::submit:
      call = [=, task = std::move(p.task)](caf::event_based_actor*) {
        std::int64_t id = 0;
        bool created = false;
        if (auto e = service->create(task, id, &created))
          return failed(e);
        reply(json_answer(created ? 201 : 200, {{"id", id}, {"created", created}}));
      };
      break;
    case responder::status:
      call = [=, id = p.id](caf::event_based_actor*) {
        std::string out;
        if (auto e = service->status(id, out))
          return failed(e);
        json_text(std::move(out));
      };
      break;
    case responder::list:
      call = [=, filter = std::move(p.text)](caf::event_based_actor*) {
        std::string out;
        if (auto e = service->list(filter, out))
          return failed(e);
        json_text(std::move(out));
      };
      break;
    case responder::cancel:
      call = [=, id = p.id](caf::event_based_actor*) {
        if (auto e = service->cancel(id))
          return failed(e);
        reply(json_answer(200, {{"id", id}, {"state", "cancelled"}}));
      };
      break;
    case responder::ping:
      if (poller) {  // ready: the claim loop answers, and its store does
        call = [=, target = poller](caf::event_based_actor* self) {
          self->request(target, timeout, ping_atom_v)
              .then(
                  [reply](bool) {
                    reply(json_answer(200, {{"status", "ready"}}));
                  },
                  [failed](caf::error& e) { failed(e); });
        };
      } else {  // no claim loop here: the store alone
        call = [=](caf::event_based_actor*) {
          if (auto e = service->ping())
            return failed(e);
          reply(json_answer(200, {{"status", "ready"}}));
        };
      }
      break;
    case responder::signal:
      if (!cfg.signal) {  // the usual way: tk_signal
        call = [=, token = std::move(p.text), body = std::move(p.body)](caf::event_based_actor*) {
          if (auto e = service->signal(token, body))
            return failed(e);
          reply(json_answer(200, {{"signalled", true}}));
        };
        break;
      }
      call = [reply, fn = cfg.signal, token = std::move(p.text),
              body = std::move(p.body)](caf::event_based_actor*) {
        answer a;
        try {
          auto r = fn(token, body);
          a.status = r.status;
          a.body = std::move(r.body);
        } catch (const std::exception& e) {
          a = error_answer(500, std::string("the signal failed: ") + e.what());
        }
        reply(std::move(a));
      };
      sys.spawn(run_hook, std::move(call));
      return;
    case responder::now:
    case responder::metrics: return;  // answered by the session
  }
  caf::anon_send(bridge_actor, http_call{std::move(call)});
}

http_server::http_server(caf::actor_system& sys, const task_service& tasks, poller_actor poller,
                         http_config config)
  : impl_(std::make_shared<impl>(sys, tasks, std::move(poller), std::move(config))) {
  auto& d = *impl_;
  d.accept();
  d.work.emplace(d.ioc.get_executor());
  d.thread = std::thread([&d] {
    pthread_setname_np(pthread_self(), "tasker-http");
    try {
      d.ioc.run();
    } catch (const std::exception& e) {
      spdlog::error("http: the I/O thread failed: {}", e.what());
    }
  });
  spdlog::info("http: listening on {}:{}", d.cfg.bind, d.bound_port);
}

http_server::~http_server() {
  stop();
}

std::uint16_t http_server::port() const {
  return impl_->bound_port;
}

bool http_server::stop(std::chrono::milliseconds deadline) {
  auto& d = *impl_;
  if (d.stopped)
    return d.clean;
  d.stopped = true;
  asio::post(d.ioc, [&d] { d.begin_stop(); });
  {
    std::unique_lock<std::mutex> lock{d.mu};
    d.clean = d.cv.wait_for(lock, deadline, [&d] { return d.drained; });
  }
  d.work.reset();
  d.ioc.stop();
  if (d.thread.joinable())
    d.thread.join();
  d.gate_->close();
  d.sessions.clear();  // the I/O thread is gone: their sockets close here
  caf::anon_send_exit(d.bridge_actor, caf::exit_reason::user_shutdown);
  if (!d.clean)
    spdlog::warn("http: stopped with requests still unanswered after {} ms", deadline.count());
  else
    spdlog::info("http: stopped");
  return d.clean;
}

}  // namespace tasker::actors
