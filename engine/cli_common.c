#include <errno.h>
#include <json-c/json.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "engine.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

void cli_print_common_help(FILE *f)
{
    fputs("\nCommon options (flags over KILN_* environment over kiln.yaml):\n"
          "  --home DIR          state folder (default .kiln)\n"
          "  --dags DIR          DAG folder (default dags)\n"
          "  --config FILE       settings file (default ./kiln.yaml if present)\n"
          "  --parallelism N     tasks running at once, all DAGs (default 32)\n"
          "  --pool NAME=SLOTS   define a pool (repeatable)\n"
          "  --executor NAME     local (default) or noop\n"
          "  --bind ADDR, --port N   HTTP API (default 127.0.0.1:8080; --port 0: no HTTP)\n"
          "  -o json             machine-readable output\n"
          "  -v                  verbose logging\n",
          f);
}

int cli_take_value(int *i, int argc, char **argv, const char *name, const char **val,
                   const char *who)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') {
        *val = argv[*i] + n + 1;
        return 1;
    }
    if (strcmp(argv[*i], name) != 0)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", who, name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

static int take_value(int *i, int argc, char **argv, const char *name, const char **val)
{
    return cli_take_value(i, argc, argv, name, val, "kiln");
}

int cli_apply(struct cli *c, struct json_object *body, const char *done)
{
    char *result = NULL;
    int code = cli_mutate(c, json_object_to_json_string(body), &result);
    if (code == 0)
        puts(c->json ? result : done);
    free(result);
    json_object_put(body);
    return code;
}

int cli_init(struct cli *c, int argc, char **argv)
{
    static const char *const settings_flags[] = { "home", "dags", "bind", "port", "executor",
                                                  "parallelism", "kill-grace", "log-level" };
    const char *config = NULL;
    /* The config file is read first, so flags can override it. */
    for (int i = 0; i < argc; i++) {
        const char *v;
        int r = take_value(&i, argc, argv, "--config", &v);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0)
            config = v;
    }
    struct kiln_err err = { 0 };
    if (settings_load(&c->cfg, config, &err) < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        return EXIT_USAGE;
    }
    c->argv = xcalloc((size_t)argc + 1, sizeof *c->argv);
    c->argc = 0;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = take_value(&i, argc, argv, "--config", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            continue;
        }
        if ((r = take_value(&i, argc, argv, "-o", &v)) != 0 ||
            (r = take_value(&i, argc, argv, "--output", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (strcmp(v, "json") != 0 && strcmp(v, "table") != 0) {
                fprintf(stderr, "kiln: -o takes json or table, got '%s'\n", v);
                return EXIT_USAGE;
            }
            c->json = strcmp(v, "json") == 0;
            continue;
        }
        if ((r = take_value(&i, argc, argv, "--pool", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (settings_set_pool(&c->cfg, v, &err) < 0) {
                fprintf(stderr, "kiln: %s\n", err.msg);
                return EXIT_USAGE;
            }
            continue;
        }
        if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            settings_set(&c->cfg, "log_level", "debug", NULL);
            continue;
        }
        bool taken = false;
        for (size_t k = 0; k < ARRAY_LEN(settings_flags) && !taken; k++) {
            char flag[40];
            snprintf(flag, sizeof flag, "--%s", settings_flags[k]);
            if ((r = take_value(&i, argc, argv, flag, &v)) == 0)
                continue;
            if (r < 0)
                return EXIT_USAGE;
            char name[40];
            snprintf(name, sizeof name, "%s", settings_flags[k]);
            for (char *p = name; *p; p++)
                if (*p == '-')
                    *p = '_';
            if (strcmp(name, "home") == 0)
                c->home_given = true;
            if (settings_set(&c->cfg, name, v, &err) < 0) {
                fprintf(stderr, "kiln: %s\n", err.msg);
                return EXIT_USAGE;
            }
            taken = true;
        }
        if (!taken)
            c->argv[c->argc++] = argv[i];
    }
    if (getenv("KILN_HOME") && *getenv("KILN_HOME"))
        c->home_given = true;
    const char *lv = c->cfg.log_level;
    log_level = strcmp(lv, "debug") == 0 ? LOG_DEBUG : strcmp(lv, "warn") == 0 ? LOG_WARN
              : strcmp(lv, "error") == 0 ? LOG_ERROR : LOG_INFO;
    /* The home must be absolute: the daemon, the CLI and the shepherd find
     * each other's sockets through it, whatever their working folders. */
    mkdir_p(c->cfg.home, 0755);
    char *abs = realpath(c->cfg.home, NULL);
    if (abs) {
        free(c->cfg.home);
        c->cfg.home = abs;
    }
    char *dabs = realpath(c->cfg.dags, NULL);
    if (dabs) {
        free(c->cfg.dags);
        c->cfg.dags = dabs;
    }
    return 0;
}

void cli_free(struct cli *c)
{
    settings_free(&c->cfg);
    free(c->argv);
}

int cli_exit_code(int rc)
{
    switch (rc) {
    case 0: return EXIT_OK;
    case KILN_ENOTFOUND: return EXIT_NOTFOUND;
    case KILN_ESTATE: return EXIT_STATE;
    case KILN_EINVALID:
    case KILN_EPARSE:
    case KILN_ECYCLE: return EXIT_USAGE;
    case -ETIMEDOUT: return EXIT_TIMEOUT;
    default: return EXIT_FAILED;
    }
}

const char *cli_actor(void)
{
    static char buf[128];
    const char *user = getenv("USER");
    if (!user) {
        struct passwd *pw = getpwuid(getuid());
        user = pw ? pw->pw_name : "unknown";
    }
    snprintf(buf, sizeof buf, "cli:%s", user);
    return buf;
}

int cli_open_store(struct cli *c, struct store **out)
{
    struct kiln_err err = { 0 };
    char *p = home_path(c->cfg.home, "kiln.db");
    int rc = store_open(out, p, &err);
    free(p);
    if (rc < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        return EXIT_FAILED;
    }
    return 0;
}

static void nudge(const char *home)
{
    char *p = home_path(home, "daemon.sock");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p);
    free(p);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        sendto(fd, "!", 1, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof sa);
        close(fd);
    }
}

struct cmd_state {
    char *state, *result;
};

static int cmd_state_row(void *arg, struct store_row *r)
{
    struct cmd_state *s = arg;
    s->state = xstrdup(store_col_text(r, 0));
    s->result = store_col_text(r, 1) ? xstrdup(store_col_text(r, 1)) : NULL;
    return 1;
}

/* The daemon's answer to a command: {"error": ..., "code": N} or a result. */
static int via_daemon(struct cli *c, struct store *st, const char *body, char **result)
{
    struct kiln_err err = { 0 };
    int64_t id = 0;
    if (store_insert(st, Q_command_insert, &id, &err, "iss", now_us(), cli_actor(), body) < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        return EXIT_FAILED;
    }
    nudge(c->cfg.home);
    for (int waited = 0; waited < 15000; waited += 5) {
        struct cmd_state s = { NULL, NULL };
        store_exec(st, Q_command_get, cmd_state_row, &s, &err, "i", id);
        if (s.state && strcmp(s.state, "pending") != 0) {
            int code = EXIT_OK;
            if (strcmp(s.state, "error") == 0) {
                struct json_object *o = json_tokener_parse(s.result ? s.result : "{}");
                struct json_object *m = NULL, *cd = NULL;
                json_object_object_get_ex(o, "error", &m);
                json_object_object_get_ex(o, "code", &cd);
                fprintf(stderr, "kiln: %s\n", m ? json_object_get_string(m) : "command failed");
                code = cli_exit_code(cd ? json_object_get_int(cd) : -1);
                json_object_put(o);
                free(s.result);
            } else {
                *result = s.result;
            }
            free(s.state);
            return code;
        }
        free(s.state);
        free(s.result);
        usleep(5000);
    }
    fprintf(stderr, "kiln: the daemon did not apply the command within 15 s "
                    "(it stays queued and will be applied)\n");
    return EXIT_TIMEOUT;
}

static int offline(struct cli *c, struct store *st, const char *body, char **result)
{
    struct kiln_err err = { 0 };
    struct sched *s = NULL;
    struct sched_config sc = {
        .home = c->cfg.home, .parallelism = c->cfg.parallelism, .pools = c->cfg.pools,
        .n_pools = c->cfg.n_pools, .offline = true,
    };
    int rc = sched_new(&s, NULL, st, &sc, &err);
    struct cmd_ctx ctx = { .st = st, .sched = s, .dags_dir = c->cfg.dags, .home = c->cfg.home,
                           .actor = cli_actor() };
    if (rc == 0)
        rc = cmd_apply(&ctx, body, result, &err);
    if (rc == 0)
        rc = sched_flush(s, &err);
    else
        store_txn_rollback(st);
    sched_free(s);
    if (rc < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        return cli_exit_code(rc);
    }
    return EXIT_OK;
}

int cli_mutate(struct cli *c, const char *body, char **result)
{
    struct store *st = NULL;
    int code = cli_open_store(c, &st);
    if (code)
        return code;
    *result = NULL;
    for (;;) {
        int fd = home_lock(c->cfg.home, false);
        if (fd >= 0) {
            /* No daemon: apply here, holding its lock so none starts meanwhile. */
            code = offline(c, st, body, result);
            close(fd);
            break;
        }
        if (daemon_running(c->cfg.home, NULL)) {
            code = via_daemon(c, st, body, result);
            break;
        }
        usleep(2000); /* another CLI holds the lock for a moment */
    }
    store_close(st);
    return code;
}
