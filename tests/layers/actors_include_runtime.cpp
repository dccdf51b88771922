// Planted upward include: the actors layer must not see the runtime above it.
#include <tasker/runtime/worker.hpp>
