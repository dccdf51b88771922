/* A C user of the installed ABI, built with pkg-config's flags: opens a
   memory core, registers a one-step pipeline, creates a task and reads its
   state. Exit 0 only when every call succeeds. */
#include <stdio.h>

#include <tasker/core.h>

int main(void) {
  tk_error err = {0};
  tk_core* core = tk_open("memory:", NULL, &err);
  if (!core) {
    fprintf(stderr, "tk_open: %s\n", err.message);
    return 1;
  }
  const char* pipeline = "{\"namespace\":\"c\",\"name\":\"one\",\"version\":\"1.0.0\","
                         "\"steps\":[{\"name\":\"only\",\"handler\":\"noop\"}]}";
  int code = 1;
  if (tk_register_pipeline(core, pipeline, &err) == TK_OK) {
    tk_task_spec spec = {0};
    spec.namespace_name = "c";
    spec.name = "one";
    spec.version = "1.0.0";
    spec.context_json = "{}";
    int64_t id = 0;
    const char* state = NULL;
    if (tk_create_task(core, &spec, &id, NULL, &err) == TK_OK
        && tk_task_state(core, id, &state, &err) == TK_OK) {
      printf("task %lld is %s\n", (long long)id, state);
      code = 0;
    }
  }
  if (code != 0)
    fprintf(stderr, "tasker: %s\n", err.message);
  tk_close(core);
  return code;
}
