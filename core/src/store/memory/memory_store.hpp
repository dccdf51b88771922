// The in-memory store: nothing persists. For tests and benchmarks, and the
// reference for the others' behaviour.
#pragma once

#include <memory>

#include "store/store.hpp"

namespace tasker::core {

std::unique_ptr<store> make_memory_store();

}  // namespace tasker::core
