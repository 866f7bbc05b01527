/* noop executor: every try succeeds on the next loop turn, with no process.
 * Used by the scheduler benchmark (transitions per second with every
 * transition persisted) and by tests of the scheduler alone. */
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "util.h"

struct noop_exec {
    struct executor base;
    uv_check_t check;              /* completes the batch after the loop's poll */
    uv_idle_t idle;                /* while a batch waits, the poll must not block */
    int64_t *pending;
    size_t n, cap;
    void (*close_done)(struct executor *);
};

static void on_check(uv_check_t *h)
{
    struct noop_exec *x = container_of(h, struct noop_exec, check);
    /* Take the batch first: callbacks may start new tries. */
    int64_t *batch = x->pending;
    size_t n = x->n;
    x->pending = NULL;
    x->n = x->cap = 0;
    uv_check_stop(&x->check);
    uv_idle_stop(&x->idle);
    int64_t now = now_us();
    for (size_t i = 0; i < n; i++) {
        x->base.on_started(x->base.cb_arg, batch[i], "noop", now);
        struct exec_result res = { .try_id = batch[i], .start_us = now, .end_us = now };
        x->base.on_done(x->base.cb_arg, &res);
    }
    free(batch);
}

static void on_idle(uv_idle_t *h)
{
    (void)h;
}

static void queue(struct noop_exec *x, int64_t try_id)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        x->pending = xrealloc(x->pending, x->cap * sizeof *x->pending);
    }
    x->pending[x->n++] = try_id;
    uv_check_start(&x->check, on_check);
    uv_idle_start(&x->idle, on_idle);
}

static int noop_start(struct executor *ex, const struct exec_spec *spec, struct kiln_err *err)
{
    queue((struct noop_exec *)ex, spec->try_id);
    return 0;
}

static int noop_cancel(struct executor *ex, int64_t try_id, int64_t grace_ms)
{
    return 0;
}

static int noop_adopt(struct executor *ex, const struct exec_spec *spec, const char *executor_id,
                      struct kiln_err *err)
{
    /* Nothing survives a restart: report it finished. */
    queue((struct noop_exec *)ex, spec->try_id);
    return 0;
}

static void on_idle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_closed(uv_handle_t *h)
{
    struct noop_exec *x = container_of((uv_check_t *)h, struct noop_exec, check);
    void (*done)(struct executor *) = x->close_done;
    free(x->pending);
    if (done)
        done(&x->base);
    free(x);
}

static void noop_close(struct executor *ex, void (*done_cb)(struct executor *))
{
    struct noop_exec *x = (struct noop_exec *)ex;
    x->close_done = done_cb;
    /* Handles close in the order asked, so the check handle's callback,
     * which frees x, runs after the idle handle's. */
    uv_close((uv_handle_t *)&x->idle, on_idle_closed);
    uv_close((uv_handle_t *)&x->check, on_closed);
}

static const struct executor_ops noop_ops = {
    .name = "noop", .start = noop_start, .cancel = noop_cancel, .adopt = noop_adopt,
    .close = noop_close,
};

int exec_noop_new(struct executor **out, uv_loop_t *loop)
{
    struct noop_exec *x = xcalloc(1, sizeof *x);
    x->base.ops = &noop_ops;
    x->base.loop = loop;
    uv_check_init(loop, &x->check);
    uv_idle_init(loop, &x->idle);
    *out = &x->base;
    return 0;
}
