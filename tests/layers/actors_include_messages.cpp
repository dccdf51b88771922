// Control case: the actors layer sees the messages and the core below it.
#include <tasker/actors/poller.hpp>
#include <tasker/core.h>
#include <tasker/messages/step_event.hpp>

int tasker_layer_control() {
  return TK_OK;
}
