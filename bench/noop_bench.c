/* noop_bench: how fast the scheduler decides and persists, with no process
 * spawned.
 *
 *   noop_bench [--kiln PATH] [--parallelism N] [DAG.yaml ...]
 *
 * For each DAG file (by default two generated ones: layered 100 x 100 and a
 * chain of 10,000), opens an engine on a fresh home folder with the "noop"
 * executor, which completes every try on the next loop turn, triggers one
 * run through the same command path as the CLI, runs the loop until the run
 * is finished, and prints
 *
 *   noop SHAPE TASKS TRANSITIONS TRIGGER_S RUN_S TRANSITIONS_PER_S TASKS_PER_S
 *
 * TRIGGER_S is the trigger command (parse, version, one row per task
 * instance, load into the scheduler); RUN_S is from the first dispatch to
 * the end of the run; the rates are over RUN_S.  Every task-instance
 * transition is written to SQLite (WAL, synchronous=NORMAL, one transaction
 * per loop turn), as in a real run.  Exits non-zero unless every task
 * instance of every run ended in state 'success'.
 *
 * The engine always opens its local executor too, which starts a task
 * shepherd for the home; --kiln names the kiln binary for that (default
 * $KILN_BIN, else ./kiln).  This program is the child subreaper of that
 * shepherd, and stops and reaps it before the next DAG. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "util.h"

struct bench {
    struct engine *e;
    int64_t run_pk;
    bool done;
    enum run_state state;
    double t_end;
    uv_timer_t stop;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes the default DAGs.  The layered one draws its two distinct parents
 * per task with a fixed-seed generator, so every run times the same DAG. */
static int write_layered(const char *path, int layers, int width)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    uint64_t x = 42;
    fprintf(f, "dag: bench_layered\nschedule: none\nmax_active_tasks: 100000\ntasks:\n");
    for (int i = 0; i < layers; i++)
        for (int j = 0; j < width; j++) {
            if (i == 0) {
                fprintf(f, "  l%d_%d: {command: [true]}\n", i, j);
                continue;
            }
            int a, b;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            a = (int)(x % (uint64_t)width);
            do {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                b = (int)(x % (uint64_t)width);
            } while (b == a);
            fprintf(f, "  l%d_%d: {deps: [l%d_%d, l%d_%d], command: [true]}\n", i, j, i - 1, a,
                    i - 1, b);
        }
    return fclose(f) == 0 ? 0 : -errno;
}

static int write_chain(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "dag: bench_chain\nschedule: none\nmax_active_tasks: 100000\ntasks:\n");
    fprintf(f, "  t0: {command: [true]}\n");
    for (int i = 1; i < n; i++)
        fprintf(f, "  t%d: {deps: [t%d], command: [true]}\n", i, i - 1);
    return fclose(f) == 0 ? 0 : -errno;
}

/* The run's end is announced from inside the scheduler's turn; stop the
 * engine on the next turn, once that turn has committed. */
static void on_stop_timer(uv_timer_t *h)
{
    struct bench *b = h->data;
    if (!sched_run_finished(engine_sched(b->e), b->run_pk, &b->state)) {
        uv_timer_start(h, on_stop_timer, 0, 0);
        return;
    }
    uv_close((uv_handle_t *)h, NULL);
    engine_stop(b->e);
}

static void on_event(void *arg, const struct sched_event *ev)
{
    struct bench *b = arg;
    if (ev->task_id || ev->run_pk != b->run_pk || b->done)
        return;
    if (strcmp(ev->state, "success") != 0 && strcmp(ev->state, "failed") != 0)
        return;
    b->done = true;
    b->t_end = now_s();
    uv_timer_start(&b->stop, on_stop_timer, 0, 0);
}

struct ti_count {
    size_t n, success;
};

static int ti_row(void *arg, struct store_row *r)
{
    struct ti_count *c = arg;
    c->n++;
    const char *st = store_col_text(r, 3);
    if (st && strcmp(st, "success") == 0)
        c->success++;
    return 0;
}

/* Stops the shepherd the local executor started for this home: its pid is
 * the first field of HOME/shepherd.lock, and it is our child (we are its
 * subreaper), so it is reaped here. */
static void stop_shepherd(const char *home)
{
    char *p = xasprintf("%s/shepherd.lock", home);
    char *buf = NULL;
    long pid = 0;
    if (file_read_all(p, &buf, NULL) == 0)
        pid = strtol(buf, NULL, 10);
    free(buf);
    free(p);
    if (pid <= 1)
        return;
    char exe[64], cmd[256] = "";
    snprintf(exe, sizeof exe, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(exe, "r");
    if (!f)
        return;
    size_t n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    if (!strstr(cmd, "shepherd"))
        return;
    kill((pid_t)pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        pid_t w = waitpid((pid_t)pid, NULL, WNOHANG);
        if (w == (pid_t)pid || (w < 0 && errno == ECHILD))
            return;
        usleep(10000);
    }
    kill((pid_t)pid, SIGKILL);
    waitpid((pid_t)pid, NULL, 0);
}

static int bench_one(const char *path, const char *kiln, int parallelism)
{
    char home[] = "/tmp/kiln-noop.XXXXXX";
    if (!mkdtemp(home)) {
        perror("noop_bench: mkdtemp");
        return -1;
    }
    struct kiln_settings cfg;
    struct kiln_err err = { 0 };
    char par[32];
    snprintf(par, sizeof par, "%d", parallelism);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct bench b = { 0 };
    bool ok = false;
    int rc;
    if ((rc = settings_load(&cfg, NULL, &err)) < 0 ||
        (rc = settings_set(&cfg, "home", home, &err)) < 0 ||
        (rc = settings_set(&cfg, "dags", home, &err)) < 0 ||
        (rc = settings_set(&cfg, "executor", "noop", &err)) < 0 ||
        (rc = settings_set(&cfg, "parallelism", par, &err)) < 0) {
        fprintf(stderr, "noop_bench: settings: %s\n", err.msg);
        goto out;
    }
    struct engine_opts o = { .cfg = &cfg, .self_exe = kiln, .daemon = false };
    if ((rc = engine_open(&b.e, &loop, &o, &err)) < 0) {
        fprintf(stderr, "noop_bench: engine: %s\n", err.msg);
        goto out;
    }
    struct cmd_ctx c;
    engine_cmd_ctx(b.e, &c, "bench");
    struct sbuf body;
    sbuf_init(&body);
    sbuf_adds(&body, "{\"op\":\"trigger\",\"run_id\":\"bench\",\"file\":");
    sbuf_json_str(&body, path);
    sbuf_adds(&body, "}");
    char *result = NULL;
    double t0 = now_s();
    rc = cmd_apply(&c, body.data, &result, &err);
    sbuf_free(&body);
    if (rc < 0) {
        fprintf(stderr, "noop_bench: trigger %s: %s\n", path, err.msg);
        goto out;
    }
    /* {"dag":ID,"run_id":ID,"run":PK}; the generated ids need no unescaping. */
    char dag_id[128] = "dag";
    const char *k = strstr(result, "\"dag\":\"");
    if (k)
        sscanf(k + 7, "%127[^\"]", dag_id);
    k = strstr(result, "\"run\":");
    b.run_pk = k ? strtoll(k + 6, NULL, 10) : 0;
    free(result);
    double t1 = now_s();
    uv_timer_init(&loop, &b.stop);
    b.stop.data = &b;
    /* An observer is set, as `kiln dags test` sets one. */
    sched_set_observer(engine_sched(b.e), on_event, &b);
    if ((rc = sched_flush(engine_sched(b.e), &err)) < 0) {
        fprintf(stderr, "noop_bench: first flush: %s\n", err.msg);
        goto out;
    }
    uv_run(&loop, UV_RUN_DEFAULT);

    struct sched_stats ss;
    sched_get_stats(engine_sched(b.e), &ss);
    struct ti_count tc = { 0 };
    store_exec(engine_store(b.e), Q_ti_list, ti_row, &tc, &err, "i", b.run_pk);
    double run_s = b.t_end - t1;
    printf("noop %s %zu %" PRIu64 " %.3f %.3f %.0f %.0f\n", dag_id, tc.n, ss.transitions, t1 - t0,
           run_s, (double)ss.transitions / run_s, (double)tc.n / run_s);
    fflush(stdout);
    ok = b.done && b.state == RUN_SUCCESS && tc.n > 0 && tc.success == tc.n;
    if (!ok)
        fprintf(stderr, "noop_bench: %s: run %s, %zu of %zu task instances succeeded\n", path,
                b.done ? run_state_name(b.state) : "unfinished", tc.success, tc.n);
out:
    if (b.e && !b.done) {
        /* Failed before the run ended: close what is open and let it drain. */
        if (b.stop.loop)
            uv_close((uv_handle_t *)&b.stop, NULL);
        engine_stop(b.e);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    engine_free(b.e);
    uv_loop_close(&loop);
    stop_shepherd(home);
    settings_free(&cfg);
    char *rm = xasprintf("rm -rf '%s'", home);
    if (system(rm) != 0)
        fprintf(stderr, "noop_bench: could not remove %s\n", home);
    free(rm);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *kiln = getenv("KILN_BIN") ? getenv("KILN_BIN") : "./kiln";
    int parallelism = 10000;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--kiln") == 0 && i + 1 < argc)
            kiln = argv[++i];
        else if (strcmp(argv[i], "--parallelism") == 0 && i + 1 < argc)
            parallelism = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: noop_bench [--kiln PATH] [--parallelism N] [DAG.yaml ...]\n");
            return 2;
        }
    }
    if (access(kiln, X_OK) != 0) {
        fprintf(stderr, "noop_bench: kiln binary %s not found (--kiln or KILN_BIN)\n", kiln);
        return 2;
    }
    log_level = LOG_WARN;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        perror("noop_bench: prctl");
    char dir[] = "/tmp/kiln-noop-dags.XXXXXX";
    char *gen[2] = { NULL, NULL };
    char **files = argv + i;
    int n = argc - i;
    if (n == 0) {
        if (!mkdtemp(dir)) {
            perror("noop_bench: mkdtemp");
            return 1;
        }
        gen[0] = xasprintf("%s/layered.yaml", dir);
        gen[1] = xasprintf("%s/chain.yaml", dir);
        if (write_layered(gen[0], 100, 100) < 0 || write_chain(gen[1], 10000) < 0) {
            perror("noop_bench: writing DAGs");
            return 1;
        }
        files = gen;
        n = 2;
    }
    int failed = 0;
    for (int j = 0; j < n; j++)
        if (bench_one(files[j], kiln, parallelism) < 0)
            failed++;
    if (gen[0]) {
        unlink(gen[0]);
        unlink(gen[1]);
        rmdir(dir);
        free(gen[0]);
        free(gen[1]);
    }
    return failed ? 1 : 0;
}
