/* tasker/core_testing.h — test and benchmark controls of the tasker core.
 *
 * NOT INSTALLED, and not part of the interface workers use: these calls let
 * this repository's tests and benchmarks drive the core in ways production
 * never should (a manual clock, injected store faults, the unpooled-events
 * baseline). They are exported by the same library, and cost production
 * nothing beyond a null or flag check. Names follow tasker/core.h.
 */
#ifndef TASKER_CORE_TESTING_H
#define TASKER_CORE_TESTING_H

#include <tasker/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A clock: returns milliseconds since the epoch. */
typedef int64_t (*tk_clock_fn)(void* user);
/** Replaces the core's clock (NULL restores the system clock): a manual
 *  clock lets retry and lease tests run without sleeping. */
TK_API tk_status tk_set_clock(tk_core* core, tk_clock_fn fn, void* user, tk_error* err);

/** Makes the store fail its n-th next database statement (0 = the very next)
 *  with TK_STORE_ERROR, as a lost connection or a full disk would; -1 clears
 *  it. For fault-sweep tests of atomicity: a call that fails must leave the
 *  store as it was. The memory store has no database: TK_UNSUPPORTED. */
TK_API tk_status tk_inject_store_fault(tk_core* core, int64_t after_statements, tk_error* err);

/** Pooled (`pooled` nonzero, the default): the worker's events live in
 *  memory it keeps from poll to poll. Not pooled: every poll frees that
 *  memory and gives each event's strings a heap block of their own — the
 *  baseline a naive FFI would be, measured by bench/core_loop. */
TK_API tk_status tk_set_event_pooling(tk_worker* worker, int pooled, tk_error* err);

#ifdef __cplusplus
}
#endif

#endif /* TASKER_CORE_TESTING_H */
