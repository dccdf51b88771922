// A naive worker over the C ABI, as other engines' workers are written: the
// baselines of ffi_bench, kept here so that the runtime has one way to claim
// (event-driven, up to free capacity) and no benchmark mode in its path.
//
//   interval  one thread; every `interval` it claims a batch, runs each step
//             inline and completes them: polling, as Tasker's TypeScript
//             worker does (no wake-up callback, no timer).
//   drop      "claim then drop": whenever the core wakes it, a result is
//             done, or `interval` passes, it claims a whole batch; the steps
//             that fit under `max_in_flight` go to `threads` executor
//             threads, the others are dropped and left to their leases.
//
// Tasks are created and waited for through the same core (its task listener
// says when one ends), so a benchmark drives a naive worker the way it drives
// a tasker::worker's client.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include <tasker/core.hpp>

namespace bench {

struct naive_options {
  enum class mode { interval, drop } how = mode::interval;
  std::chrono::milliseconds interval{10};
  std::size_t batch = 64;
  std::size_t max_in_flight = 16;  ///< drop: steps kept at once
  std::size_t threads = 8;         ///< drop: executor threads
  std::int64_t lease_ms = 30000;
  std::function<void()> work = [] {};  ///< what every step does
};

class naive_worker {
public:
  /// Opens `store_url`, registers `pipeline_json` and starts the threads.
  naive_worker(const std::string& store_url, const std::string& pipeline_json, naive_options o)
    : opt_(std::move(o)) {
    tk_error err{};
    core_ = tasker::core_handle::open(store_url.c_str(), err);
    if (!core_)
      throw std::runtime_error(std::string("naive_worker: ") + err.message);
    if (tk_register_pipeline(core_, pipeline_json.c_str(), &err) != TK_OK)
      throw std::runtime_error(std::string("naive_worker: ") + err.message);
    if (tk_set_task_listener(core_, &naive_worker::task_ended, this, &err) != TK_OK)
      throw std::runtime_error(std::string("naive_worker: ") + err.message);
    tk_worker_options wo{};
    wo.name = "naive";
    wo.lease_ms = opt_.lease_ms;
    worker_ = tk_worker_open(core_, &wo, &err);
    if (!worker_)
      throw std::runtime_error(std::string("naive_worker: ") + err.message);
    if (opt_.how == naive_options::mode::drop) {
      tk_set_wakeup(core_, &naive_worker::woken, this, nullptr);
      for (std::size_t i = 0; i < opt_.threads; ++i)
        executors_.emplace_back([this] { execute(); });
    }
    loop_ =
        std::thread([this] { opt_.how == naive_options::mode::drop ? drop_loop() : poll_loop(); });
  }

  ~naive_worker() {
    {
      std::lock_guard<std::mutex> g{mu_};
      stopping_ = true;
    }
    cv_.notify_all();
    exec_cv_.notify_all();
    loop_.join();
    for (auto& t : executors_)
      t.join();
    tk_set_wakeup(core_, nullptr, nullptr, nullptr);
    tk_worker_close(worker_);
    core_.reset();  // no callback after this
  }
  naive_worker(const naive_worker&) = delete;
  naive_worker& operator=(const naive_worker&) = delete;

  std::vector<std::int64_t> create(const std::string& ns, const std::string& name,
                                   const std::string& version, std::size_t count) {
    std::vector<tk_task_spec> specs(count);
    for (auto& s : specs) {
      s.namespace_name = ns.c_str();
      s.name = name.c_str();
      s.version = version.c_str();
      s.context_json = "{}";
    }
    std::vector<std::int64_t> ids(count);
    tk_error err{};
    if (tk_create_tasks(core_, specs.data(), count, ids.data(), nullptr, &err) != TK_OK)
      throw std::runtime_error(std::string("naive_worker: ") + err.message);
    return ids;
  }

  /// Blocks until the task ends (its final state) or `timeout` passes ("").
  std::string wait(std::int64_t id, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock{ended_mu_};
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto it = ended_.find(id);
      if (it != ended_.end())
        return it->second;
      const char* state = nullptr;
      if (tk_task_state(core_, id, &state, nullptr) == TK_OK
          && (std::string(state) == "complete" || std::string(state) == "error"
              || std::string(state) == "cancelled"))
        return state;
      if (ended_cv_.wait_until(lock, deadline) == std::cv_status::timeout)
        return "";
    }
  }

  nlohmann::json status(std::int64_t id) {
    char* text = nullptr;
    tk_error err{};
    if (tk_task_status(core_, id, &text, &err) != TK_OK)
      throw std::runtime_error(std::string("naive_worker: ") + err.message);
    auto j = nlohmann::json::parse(text);
    tk_free(text);
    return j;
  }

  std::uint64_t dropped() const { return dropped_; }

private:
  struct claimed {
    std::int64_t step_id, token;
  };

  static void task_ended(void* user, std::int64_t id, const char* state) {
    auto* self = static_cast<naive_worker*>(user);
    {
      std::lock_guard<std::mutex> g{self->ended_mu_};
      self->ended_[id] = state;
    }
    self->ended_cv_.notify_all();
  }
  static void woken(void* user) {
    auto* self = static_cast<naive_worker*>(user);
    {
      std::lock_guard<std::mutex> g{self->mu_};
      self->woken_ = true;
    }
    self->cv_.notify_all();
  }

  void complete(std::vector<claimed>& done) {
    if (done.empty())
      return;
    std::vector<tk_step_result> results(done.size(), tk_step_result{});
    for (std::size_t i = 0; i < done.size(); ++i) {
      results[i].step_id = done[i].step_id;
      results[i].fencing_token = done[i].token;
      results[i].kind = TK_RESULT_SUCCESS;
      results[i].result_json = "{}";
    }
    std::vector<int> outcomes(done.size());
    tk_complete(worker_, results.data(), results.size(), outcomes.data(), nullptr);
    done.clear();
  }

  // interval: claim, run inline, complete; sleep until the next tick.
  void poll_loop() {
    std::vector<claimed> done;
    std::unique_lock<std::mutex> lock{mu_};
    while (!stopping_) {
      lock.unlock();
      const tk_step_event* events = nullptr;
      std::size_t n = 0;
      if (tk_poll(worker_, opt_.batch, &events, &n, nullptr) == TK_OK)
        for (std::size_t i = 0; i < n; ++i) {
          done.push_back({events[i].step_id, events[i].fencing_token});
          opt_.work();
        }
      complete(done);
      lock.lock();
      cv_.wait_for(lock, opt_.interval, [this] { return stopping_; });
    }
  }

  // drop: claim a whole batch whenever woken; keep what fits, drop the rest.
  void drop_loop() {
    std::unique_lock<std::mutex> lock{mu_};
    while (!stopping_) {
      cv_.wait_for(lock, opt_.interval,
                   [this] { return stopping_ || woken_ || !finished_.empty(); });
      if (stopping_)
        break;
      woken_ = false;
      std::vector<claimed> done;
      done.swap(finished_);
      in_flight_ -= done.size();
      lock.unlock();
      complete(done);
      const tk_step_event* events = nullptr;
      std::size_t n = 0;
      std::vector<claimed> got;
      if (tk_poll(worker_, opt_.batch, &events, &n, nullptr) == TK_OK)
        for (std::size_t i = 0; i < n; ++i)
          got.push_back({events[i].step_id, events[i].fencing_token});
      lock.lock();
      for (const auto& c : got) {
        if (in_flight_ >= opt_.max_in_flight) {
          ++dropped_;  // claimed, never run: its lease lapses
          continue;
        }
        ++in_flight_;
        queue_.push_back(c);
      }
      exec_cv_.notify_all();
    }
  }

  void execute() {
    std::unique_lock<std::mutex> lock{mu_};
    for (;;) {
      exec_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_)
        return;
      const auto c = queue_.front();
      queue_.pop_front();
      lock.unlock();
      opt_.work();
      lock.lock();
      finished_.push_back(c);
      cv_.notify_all();
    }
  }

  naive_options opt_;
  tasker::core_handle core_;
  tk_worker* worker_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_, exec_cv_;
  bool stopping_ = false, woken_ = false;
  std::deque<claimed> queue_;
  std::vector<claimed> finished_;
  std::size_t in_flight_ = 0;
  std::uint64_t dropped_ = 0;
  std::mutex ended_mu_;
  std::condition_variable ended_cv_;
  std::unordered_map<std::int64_t, std::string> ended_;
  std::thread loop_;
  std::vector<std::thread> executors_;
};

}  // namespace bench
