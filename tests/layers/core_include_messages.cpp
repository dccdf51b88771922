// Planted upward include: the core (C ABI) must not see the messages above it.
#include <tasker/messages/step_event.hpp>
