#include <tasker/actors/function_host.hpp>

#include <ctime>
#include <exception>
#include <string>

#include <caf/typed_event_based_actor.hpp>

namespace tasker::actors {

namespace {

step_result call(const step_function& fn, const step_event& event) {
  try {
    return fn(event);
  } catch (const std::exception& e) {
    return failure(step_error::handler_error, std::string("the handler threw: ") + e.what());
  } catch (...) {
    return failure(step_error::handler_error, "the handler threw a non-standard exception");
  }
}

std::int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

step_handler_behavior function_host(step_handler_pointer, step_function fn, bool measure_cpu) {
  return {
      [fn = std::move(fn), measure_cpu,
       sampler = cpu_sampler{}](const step_event& event) mutable -> step_result {
        if (!measure_cpu || !sampler.measure_next())
          return call(fn, event);
        // Read on the thread that runs the handler.
        const auto cpu0 = thread_cpu_ns();
        auto result = call(fn, event);
        result.cpu_time_ns = thread_cpu_ns() - cpu0;
        sampler.measured(result.cpu_time_ns);
        return result;
      },
  };
}

}  // namespace tasker::actors
