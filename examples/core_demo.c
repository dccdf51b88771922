/* core_demo — the orchestration core driven from plain C through its ABI.
 *
 *   s1 --> s2 --> s3 --> s4      each step squares the previous value
 *
 * Registers the linear pipeline, creates tasks with {"even_number": 6}, then
 * acts as a worker: polls batches of steps, squares, completes them, until no
 * work is left. 6 becomes 36, 1296, 1679616 and 2821109907456 (6^16).
 *
 *   core_demo [--store URL] [--tasks N]     (default sqlite:tasker-demo.db, 1000)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tasker/core.h>

static const char* pipeline =
    "{\"namespace\":\"examples\",\"name\":\"linear\",\"version\":\"1.0.0\",\"steps\":["
    "{\"name\":\"s1\",\"handler\":\"square\"},"
    "{\"name\":\"s2\",\"handler\":\"square\",\"dependencies\":[\"s1\"]},"
    "{\"name\":\"s3\",\"handler\":\"square\",\"dependencies\":[\"s2\"]},"
    "{\"name\":\"s4\",\"handler\":\"square\",\"dependencies\":[\"s3\"]}]}";

/* The number after the last occurrence of `key` in `json` (the nearest
 * ancestor's value, since ancestors come in step order). */
static int last_number(const char* json, const char* key, int64_t* out) {
  const char* found = NULL;
  for (const char* p = strstr(json, key); p; p = strstr(p + 1, key))
    found = p;
  if (!found)
    return 0;
  *out = strtoll(found + strlen(key), NULL, 10);
  return 1;
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  const char* url = "sqlite:tasker-demo.db";
  long tasks = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--store") == 0)
      url = argv[i + 1];
    else if (strcmp(argv[i], "--tasks") == 0)
      tasks = strtol(argv[i + 1], NULL, 10);
  }
  tk_error err;
  tk_core* core = tk_open(url, NULL, &err);
  if (!core || tk_register_pipeline(core, pipeline, &err) != TK_OK) {
    fprintf(stderr, "core_demo: %s\n", err.message);
    return 1;
  }
  double start = seconds();
  int64_t first = 0;
  for (long i = 0; i < tasks; ++i) {
    tk_task_spec spec = {"examples", "linear", "1.0.0", "{\"even_number\":6}", NULL, 0};
    int64_t id;
    if (tk_create_task(core, &spec, &id, NULL, &err) != TK_OK) {
      fprintf(stderr, "core_demo: create: %s\n", err.message);
      return 1;
    }
    if (i == 0)
      first = id;
  }
  tk_worker_options options = {0};
  options.name = "core_demo";
  tk_worker* worker = tk_worker_open(core, &options, &err);
  long done = 0, steps = 0;
  char results[64][48];
  tk_step_result out[64];
  for (;;) {
    const tk_step_event* ev;
    size_t n;
    if (tk_poll(worker, 64, &ev, &n, &err) != TK_OK) {
      fprintf(stderr, "core_demo: poll: %s\n", err.message);
      return 1;
    }
    if (n == 0)
      break; /* everything created above has run */
    for (size_t i = 0; i < n; ++i) {
      int64_t x = 0, sq = 0;
      int ok = strcmp(ev[i].step_name, "s1") == 0
                   ? last_number(ev[i].task_context, "\"even_number\":", &x)
                   : last_number(ev[i].dependency_results, "\"value\":", &x);
      memset(&out[i], 0, sizeof out[i]);
      out[i].step_id = ev[i].step_id;
      out[i].fencing_token = ev[i].fencing_token;
      if (ok && !__builtin_mul_overflow(x, x, &sq)) {
        snprintf(results[i], sizeof results[i], "{\"value\":%" PRId64 "}", sq);
        out[i].kind = TK_RESULT_SUCCESS;
        out[i].result_json = results[i];
        if (strcmp(ev[i].step_name, "s4") == 0 && ev[i].task_id >= first)
          ++done;
      } else {
        out[i].kind = TK_RESULT_FAILURE;
        out[i].error_message = ok ? "square overflows 64 bits" : "no input value";
        out[i].error_type = "permanent_error";
      }
    }
    if (tk_complete(worker, out, n, NULL, &err) != TK_OK) {
      fprintf(stderr, "core_demo: complete: %s\n", err.message);
      return 1;
    }
    steps += (long)n;
  }
  double elapsed = seconds() - start;
  char* status = NULL;
  int64_t s4 = 0;
  if (tk_task_status(core, first, &status, &err) == TK_OK) {
    last_number(status, "\"value\":", &s4);
    tk_free(status);
  }
  printf("store %s: %ld of %ld tasks complete; s4 = %" PRId64 "\n", url, done, tasks, s4);
  printf("%ld steps in %.3f s (%.0f steps/s, task creation included)\n", steps, elapsed,
         (double)steps / elapsed);
  tk_worker_close(worker);
  tk_close(core);
  return done == tasks ? 0 : 1;
}
