#include <tasker/actors/process_actor.hpp>

#include <atomic>
#include <exception>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/weak_intrusive_ptr.hpp>

namespace tasker::actors {

namespace {

process_result refused(std::uint64_t id, process_errc code, std::string message) {
  process_result r;
  r.id = id;
  r.error = code;
  r.error_message = std::move(message);
  return r;
}

}  // namespace

process_actor::behavior_type process_worker(process_actor::stateful_pointer<process_state> self,
                                            process_actor_config config) {
  // The I/O thread reports to the actor through a weak reference: it must
  // not keep the actor alive (nor hold up the actor system's shutdown).
  caf::weak_actor_ptr weak{self->ctrl()};
  try {
    self->state.runner = std::make_unique<detail::process_runner>(
        config.max_running, config.default_path, [weak](std::uint64_t key, process_result result) {
          if (auto strong = weak.lock())
            caf::anon_send(caf::actor_cast<process_actor>(strong), done_atom_v, key,
                           std::move(result));
        });
  } catch (const std::exception& e) {
    self->state.broken = std::string("the process actor could not start: ") + e.what();
  }
  // An exit message answers every run in flight (shut_down) before the
  // actor goes; the runner's destructor then kills and reaps the children.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& entry : self->state.pending)
      entry.second.promise.deliver(
          refused(entry.second.id, process_errc::shut_down, "the process actor stopped"));
    self->state.pending.clear();
    self->quit(msg.reason);
  });
  return {
      [self](run_atom, process_request& request) -> caf::result<process_result> {
        auto& st = self->state;
        if (!st.runner)
          return refused(request.id, process_errc::io_error, st.broken);
        if (request.id != 0 && st.keys_by_id.count(request.id) != 0)
          return refused(request.id, process_errc::invalid_request,
                         "a run with id " + std::to_string(request.id) + " is already in flight");
        const auto key = st.next_key++;
        auto promise = self->make_response_promise<process_result>();
        st.pending.emplace(key, process_state::in_flight{promise, request.id});
        if (request.id != 0)
          st.keys_by_id.emplace(request.id, key);
        st.runner->submit(key, std::move(request));
        return promise;
      },
      [self](cancel_atom, std::uint64_t id) {
        auto& st = self->state;
        auto it = st.keys_by_id.find(id);
        if (it == st.keys_by_id.end())
          return false;
        st.runner->cancel(it->second);
        return true;
      },
      [self](done_atom, std::uint64_t key, process_result& result) {
        auto& st = self->state;
        auto it = st.pending.find(key);
        if (it == st.pending.end())
          return;
        if (result.id != 0) {
          auto by_id = st.keys_by_id.find(result.id);
          if (by_id != st.keys_by_id.end() && by_id->second == key)
            st.keys_by_id.erase(by_id);
        }
        it->second.promise.deliver(std::move(result));
        st.pending.erase(it);
      },
  };
}

process_actor spawn_process_actor(caf::actor_system& sys, process_actor_config config) {
  // Detached: function handlers wait for it with process_client, blocking
  // their pool threads; on the pool itself it could not answer once every
  // pool thread waits for it (seen: two handlers on two threads hung until
  // their request timeout). It only routes messages, so one thread is plenty.
  return sys.spawn<caf::detached>(process_worker, std::move(config));
}

process_client::process_client(caf::actor_system& sys, process_actor actor,
                               std::chrono::milliseconds slack, std::chrono::milliseconds max_wait)
  : sys_(&sys), actor_(std::move(actor)), slack_(slack), max_wait_(max_wait) {
}

process_result process_client::run(process_request request) const {
  static std::atomic<std::uint64_t> next_id{1};
  if (request.id == 0)
    request.id = (std::uint64_t{1} << 63) | next_id.fetch_add(1);
  const auto id = request.id;
  const auto wait =
      request.timeout_ms > 0
          ? std::chrono::milliseconds{request.timeout_ms + request.kill_grace_ms} + slack_
          : max_wait_;
  process_result out;
  caf::scoped_actor self{*sys_};
  self->request(actor_, wait, run_atom_v, std::move(request))
      .receive([&](process_result& r) { out = std::move(r); },
               [&](caf::error& e) {
                 if (e == caf::sec::request_timeout)
                   caf::anon_send(actor_, cancel_atom_v, id);
                 out = refused(id, process_errc::io_error, "process actor: " + sys_->render(e));
               });
  return out;
}

bool process_client::cancel(std::uint64_t id) const {
  bool found = false;
  caf::scoped_actor self{*sys_};
  self->request(actor_, std::chrono::seconds{10}, cancel_atom_v, id)
      .receive([&](bool b) { found = b; }, [&](caf::error&) {});
  return found;
}

}  // namespace tasker::actors
