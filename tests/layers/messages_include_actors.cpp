// Planted upward include: the messages layer must not see the actors above it.
#include <tasker/actors/poller.hpp>
