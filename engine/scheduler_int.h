/* sched_int.h: the scheduler's internals, shared by engine/sched.c and its
 * unit tests only. */
#ifndef KILN_SCHED_INT_H
#define KILN_SCHED_INT_H

#include "scheduler.h"
#include "trigger.h"

struct srun;
struct sdag;

/* A binary min-heap of task instances; each element records its position
 * so it can be removed in O(log n).  The comparison is given per heap. */
struct sti;
struct tiheap {
    struct sti **v;
    size_t n, cap;
    bool (*before)(const struct sti *a, const struct sti *b);
    int pos_field;                 /* which position slot of struct sti this heap uses */
};

enum { HP_READY = 0, HP_TIMER = 1, HP__COUNT };

struct sti {
    struct srun *run;
    uint32_t idx;                  /* task index in the DAG */
    int64_t pk;
    enum ti_state state;
    int try_number, max_tries;
    int infra_failures;            /* infrastructure failures retried (persisted) */
    struct up_counts up;
    int64_t retry_at_us, start_us, end_us;
    char *reason;

    uint64_t seq;                  /* FIFO order among equal priorities */
    size_t hpos[HP__COUNT];        /* position in the heap it is in, +1 (0: none) */
    struct tiheap *in_heap;        /* which ready/park heap holds it */

    /* Current try, while one is in flight. */
    int64_t try_pk;
    int64_t deadline_us;           /* timeout (wall clock), 0 = none */
    int64_t timer_at_us;           /* key in the timer heap: retry or deadline */
    bool timed_out;
    bool holds_slots;              /* counted in parallelism / pool / dag limits */
    struct executor *ex;
};

#endif
