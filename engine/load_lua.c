/* load_lua: Lua 5.4 DAG file -> struct dag, in a sandbox.
 *
 * How the sandbox holds:
 *  - Libraries: only base, string, table, math, utf8 and three functions of
 *    os are opened (luaL_requiref one by one; never luaL_openlibs), so io,
 *    os.execute, package/require, debug and coroutine do not exist.  From
 *    base, dofile, loadfile and collectgarbage are removed, load accepts text
 *    chunks only, setmetatable refuses __gc (finalizers run with hooks off, so
 *    a looping one could never be stopped) and print goes to stderr, capped.
 *    string.dump is removed from the string table, which is also the string
 *    metatable's __index, so ("").dump is gone too.
 *  - Instruction budget: a count hook adds up instructions.  No hook runs
 *    inside a C function, so the library functions that loop in C are
 *    wrapped (the stock liblua functions, called by small wrappers below)
 *    so that every such loop has a bound known before it starts, and is
 *    charged to the same budget:
 *      patterns (find, match, gmatch, gsub): refused if they repeat items
 *        (* + - ?) or use %b or back-references, the only items that
 *        backtrack or scan far; what remains matches one character per
 *        item, so a call does at most (#s + 2) attempts of at most #p steps
 *        each, which is charged before it runs (see pattern_call);
 *      plain string.find: our own linear search (memmem), charged for the
 *        bytes it scanned;
 *      string.rep: a result that cannot fit in the memory left stops the
 *        file before any work (rep("", n) is "" at once);
 *      table functions: plain tables only (no __index, __newindex or __len
 *        metamethod, so each element is one raw access), at most
 *        WALK_MAX elements per call, each charged; sort compares through
 *        a wrapper that charges each comparison;
 *      tonumber, rawequal, string.byte/pack/unpack/packsize, utf8.len/
 *        offset/codepoint: charged for the length of their strings.
 *  - Memory: a lua_Alloc that refuses to grow past the cap (garbage not yet
 *    collected counts: a DAG file needs a fraction of the cap).
 *  - CPU time: checked by the hook and every MiB allocated, as a last net for
 *    the C work no counter sees (comparing two 60 MB strings: work bounded
 *    by the memory held, but not counted).
 *  - None of the three can be caught: once one trips, the allocator refuses
 *    to grow and the hook fires on every instruction and raises again, so a
 *    pcall that swallows the error gets no further; the outcome is read from
 *    the flag after the file returns, never from the Lua status alone.
 *  - Every C allocation the API makes hangs off struct lctx (the DAGs, the
 *    task being built), so a Lua error that longjmps out of a C function
 *    never leaks; all of it is freed after lua_close(). */
#include "load_lua.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "kube_spec.h"
#include "load_yaml.h"
#include "schedule.h"
#include "util.h"

const struct load_lua_limits load_lua_default_limits = {
    LOAD_LUA_INSTRUCTIONS, LOAD_LUA_MEMORY, LOAD_LUA_CPU_MS};

#define HOOK_PERIOD 1000           /* instructions between count hooks */
#define CPU_CHECK_BYTES (1 << 20)  /* allocation between CPU-time checks */
#define PRINT_CAP 65536            /* bytes of print output per file */
#define HANDLE_MT "kiln.dag"
#define DEEP_STACK 100000          /* calls deep: "endless recursion?" */
#define WALK_MAX 10000000          /* elements one table function may walk */
#define LINE_LEVELS 200            /* stack levels searched for the file's line */

enum stop { STOP_NONE, STOP_BUDGET, STOP_MEMORY, STOP_CPU };

struct ldag {
    struct dag *d;
    bool ok;          /* dag{} returned it (else it failed half-way) */
};

struct lctx {
    const char *path;
    char *chunkname;                 /* "@" path */
    char short_src[LUA_IDSIZE];      /* how Lua abbreviates the chunk name */
    struct load_lua_limits lim;
    lua_State *L;

    /* memory */
    size_t used;                     /* bytes Lua holds */
    size_t model;                    /* bytes charged for the DAG model */
    size_t alloc_since_check;

    /* instructions and time */
    uint64_t count;
    int period;
    int64_t mono_start, cpu_start;
    enum stop stop;
    char stopmsg[1100];

    /* the API */
    const void *mt;                  /* the handle metatable */
    int line;                        /* line of the API call running now */
    struct ldag *dags;
    size_t n_dags, cap_dags;
    struct dag *scratch;             /* holds the task being built */
    struct {
        const char *s;
        size_t len;
    } *keys;                         /* env/params names, for sorting */
    size_t cap_keys;
    size_t printed;
    char raised[1100];               /* the last message the API raised */
};

static struct lctx *ctx_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* --- limits ---------------------------------------------------------------- */

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The wall clock is cheap (vDSO) and a thread's CPU time never exceeds it,
 * so the CPU clock (a system call) is read only once the wall clock says
 * the limit may have passed. */
static bool cpu_exceeded(struct lctx *c)
{
    if (c->lim.cpu_ms <= 0)
        return false;
    int64_t limit = c->lim.cpu_ms * 1000000;
    if (clock_ns(CLOCK_MONOTONIC) - c->mono_start < limit)
        return false;
    return clock_ns(CLOCK_THREAD_CPUTIME_ID) - c->cpu_start >= limit;
}

static void hook(lua_State *L, lua_Debug *ar);

/* Records why the file stops (the first reason wins) and makes the hook fire
 * on every instruction from now on.  Safe inside the allocator: lua_sethook
 * only sets fields (lua.c calls it from a signal handler). */
static void stop(struct lctx *c, enum stop why)
{
    if (c->stop == STOP_NONE) {
        c->stop = why;
        switch (why) {
        case STOP_BUDGET:
            snprintf(c->stopmsg, sizeof c->stopmsg, "%s: stopped after %llu instructions",
                     c->path, (unsigned long long)c->lim.instructions);
            break;
        case STOP_MEMORY: {
            char amount[64];
            size_t m = c->lim.memory;
            if (m % ((size_t)1 << 20) == 0)
                snprintf(amount, sizeof amount, "%zu MiB", m >> 20);
            else if (m % 1024 == 0)
                snprintf(amount, sizeof amount, "%zu KiB", m >> 10);
            else
                snprintf(amount, sizeof amount, "%zu bytes", m);
            /* A runaway recursion reaches the cap before Lua's own limit of
             * a million stack slots: name the likely cause.  (Walking the
             * call chain only reads it, which is safe from the allocator.) */
            lua_Debug ar;
            bool deep = c->L && lua_getstack(c->L, DEEP_STACK, &ar);
            snprintf(c->stopmsg, sizeof c->stopmsg, "%s: stopped: memory limit of %s exceeded%s",
                     c->path, amount,
                     deep ? " (more than 100000 nested calls: endless recursion?)" : "");
            break;
        }
        case STOP_CPU: {
            char d[32];
            duration_format(c->lim.cpu_ms, d, sizeof d);
            snprintf(c->stopmsg, sizeof c->stopmsg, "%s: stopped after %s of CPU time", c->path,
                     d);
            break;
        }
        case STOP_NONE: break;
        }
    }
    if (c->L)
        lua_sethook(c->L, hook, LUA_MASKCOUNT, 1);
}

static void check_limits(struct lctx *c)
{
    if (c->count >= c->lim.instructions)
        stop(c, STOP_BUDGET);
    else if (cpu_exceeded(c))
        stop(c, STOP_CPU);
}

static int raise_stop(lua_State *L, struct lctx *c)
{
    lua_pushstring(L, c->stopmsg);
    return lua_error(L);
}

static void hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct lctx *c = ctx_of(L);
    if (c->stop == STOP_NONE) {
        c->count += (uint64_t)c->period;
        check_limits(c);
    }
    if (c->stop != STOP_NONE)
        raise_stop(L, c);
}

/* Adds steps to the instruction count, for work done in C; raises the stop
 * error when the budget is spent (or the CPU-time limit reached). */
static void charge(lua_State *L, size_t steps)
{
    struct lctx *c = ctx_of(L);
    if (c->stop == STOP_NONE) {
        uint64_t before = c->count;
        c->count = steps > UINT64_MAX - c->count ? UINT64_MAX : c->count + steps;
        /* The clock is read as often as the hook reads it: when the count
         * passes a multiple of the hook's period (a sort charges each
         * comparison). */
        if (c->count >= c->lim.instructions)
            stop(c, STOP_BUDGET);
        else if (c->count / HOOK_PERIOD != before / HOOK_PERIOD && cpu_exceeded(c))
            stop(c, STOP_CPU);
    }
    if (c->stop != STOP_NONE)
        raise_stop(L, c);
}

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lctx *c = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        c->used -= old;
        return NULL;
    }
    if (nsize > old) {
        if (c->stop != STOP_NONE)
            return NULL;
        size_t grow = nsize - old;
        if (c->used + c->model + grow > c->lim.memory) {
            /* Final, even where Lua would collect and ask again: a buffer
             * (string.rep, table.concat) never asks again, and a pcall must
             * not turn a refusal into a retry loop. */
            stop(c, STOP_MEMORY);
            return NULL;
        }
        c->alloc_since_check += grow;
        if (c->alloc_since_check >= CPU_CHECK_BYTES) {
            c->alloc_since_check = 0;
            if (cpu_exceeded(c)) {
                stop(c, STOP_CPU);
                return NULL;
            }
        }
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    c->used = c->used - old + nsize;
    return p;
}

/* Counts C memory of the model against the cap; stops the file past it. */
static void charge_model(lua_State *L, struct lctx *c, size_t bytes)
{
    c->model += bytes;
    if (c->used + c->model > c->lim.memory) {
        stop(c, STOP_MEMORY);
        raise_stop(L, c);
    }
}

/* --- messages -------------------------------------------------------------- */

/* The line being run in this file: the innermost frame of the file's own
 * chunk (a chunk made by load() has lines of its own) among the innermost
 * LINE_LEVELS, or 0.  Bounded because lua_getstack(level) walks the stack
 * from the top, so that looking through all of a stack d calls deep would
 * take d^2 / 2 steps, in C: an error 150,000 calls deep in a load()ed
 * chunk took 40 s of CPU time past every limit. */
static int current_line(lua_State *L, struct lctx *c)
{
    lua_Debug ar;
    for (int level = 1; level <= LINE_LEVELS && lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 &&
            strcmp(ar.source, c->chunkname) == 0)
            return ar.currentline;
    }
    return 0;
}

/* Raises "FILE:LINE: [WHO: ]message" at the line of the running API call. */
static int lfail(lua_State *L, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int lfail(lua_State *L, const char *who, const char *fmt, ...)
{
    struct lctx *c = ctx_of(L);
    char msg[960];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char where[40] = "";
    if (c->line > 0)
        snprintf(where, sizeof where, ":%d", c->line);
    snprintf(c->raised, sizeof c->raised, "%s%s: %s%s%s", c->path, where, who ? who : "",
             who ? ": " : "", msg);
    lua_pushstring(L, c->raised);
    return lua_error(L);
}

static bool is_handle(lua_State *L, struct lctx *c, int idx)
{
    if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
        return false;
    bool yes = lua_topointer(L, -1) == c->mt;
    lua_pop(L, 1);
    return yes;
}

/* A number as tostring() writes it ("3", "0.1", "1e+20", "2.0"), without
 * asking Lua for a string (which could raise). */
static void number_text(lua_State *L, int idx, char *buf, size_t size)
{
    if (lua_isinteger(L, idx)) {
        snprintf(buf, size, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        return;
    }
    snprintf(buf, size, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, idx));
    size_t n = strlen(buf);
    if (buf[strspn(buf, "-0123456789")] == '\0' && n + 2 < size) {
        buf[n] = '.';
        buf[n + 1] = '0';
        buf[n + 2] = '\0';
    }
}

/* What a value is, for "got ..." in messages. */
static const char *describe(lua_State *L, int idx, char *buf, size_t size)
{
    struct lctx *c = ctx_of(L);
    switch (lua_type(L, idx)) {
    case LUA_TNONE: return "nothing";
    case LUA_TNIL: return "nil";
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? "true" : "false";
    case LUA_TNUMBER: number_text(L, idx, buf, size); return buf;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (n > 60 || strlen(s) != n)
            snprintf(buf, size, "'%.57s...'", s);
        else
            snprintf(buf, size, "'%s'", s);
        return buf;
    }
    case LUA_TTABLE: return "a table";
    case LUA_TFUNCTION: return "a function";
    case LUA_TUSERDATA: return is_handle(L, c, idx) ? "a dag" : "a userdata";
    case LUA_TTHREAD: return "a coroutine";
    default: return "a value";
    }
}

/* The text of a string or number value (numbers as tostring() writes them);
 * false for other types. nbuf holds a number's text. */
static bool value_text(lua_State *L, int idx, char *nbuf, size_t nsize, const char **s,
                       size_t *len)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        *s = lua_tolstring(L, idx, len);
        return true;
    }
    if (lua_type(L, idx) == LUA_TNUMBER) {
        number_text(L, idx, nbuf, nsize);
        *s = nbuf;
        *len = strlen(nbuf);
        return true;
    }
    return false;
}

/* " (did you mean 'x'?)" or " (valid keys: ...)" after "unknown key 'k'". */
static int unknown_key(lua_State *L, const char *who, const char *key,
                       const char *const *cands, size_t n)
{
    struct sbuf b;
    sbuf_init(&b);
    dag_hint(&b, key, cands, n, "keys");
    char hint[700];
    snprintf(hint, sizeof hint, "%s", b.data);
    sbuf_free(&b);
    return lfail(L, who, "unknown key '%s'%s", key, hint);
}

/* Number of entries of a proper list (keys exactly 1..n), or -1. */
static lua_Integer list_len(lua_State *L, int t)
{
    lua_Unsigned n = lua_rawlen(L, t);
    lua_Unsigned count = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
            (lua_Unsigned)lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return -1;
        }
        count++;
    }
    return count == n ? (lua_Integer)n : -1;
}

/* Checks the keys of a settings table: strings, and each one of `known`
 * (or `extra`, a key the caller handles itself).  Reports the unknown key
 * that sorts first, so the message does not depend on table order. */
static void check_keys(lua_State *L, int t, const char *who, const char *const *known,
                       size_t n_known, const char *const *cands, size_t n_cands)
{
    char buf[80];
    const char *unknown = NULL;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            lfail(L, who, "keys must be names, got %s", describe(L, -1, buf, sizeof buf));
        const char *k = lua_tostring(L, -1);
        bool found = false;
        for (size_t i = 0; i < n_known && !found; i++)
            found = strcmp(k, known[i]) == 0;
        /* The key stays alive in the table, which is on the stack. */
        if (!found && (unknown == NULL || strcmp(k, unknown) < 0))
            unknown = k;
    }
    if (unknown)
        unknown_key(L, who, unknown, cands, n_cands);
}

/* Pushes t[key] (raw: a table's metatable is never consulted). */
static int raw_field(lua_State *L, int t, const char *key)
{
    lua_pushstring(L, key);
    return lua_rawget(L, t);
}

/* --- values ---------------------------------------------------------------- */

static void get_str(lua_State *L, const char *who, const char *key, int v, char **out)
{
    char buf[80];
    if (lua_type(L, v) != LUA_TSTRING)
        lfail(L, who, "'%s' must be a string, got %s", key, describe(L, v, buf, sizeof buf));
    size_t len;
    const char *s = lua_tolstring(L, v, &len);
    if (strlen(s) != len)
        lfail(L, who, "'%s' must not contain a NUL character", key);
    free(*out);
    *out = xstrdup(s);
}

static void get_int(lua_State *L, const char *who, const char *key, int v,
                    const struct dag_int_rule *r, int *out)
{
    char buf[80];
    int isint = 0;
    lua_Integer x = lua_type(L, v) == LUA_TNUMBER ? lua_tointegerx(L, v, &isint) : 0;
    if (!isint || x < r->min || x > r->max)
        lfail(L, who, "'%s' must be %s, got %s", key, r->kind, describe(L, v, buf, sizeof buf));
    *out = (int)x;
}

static void get_bool(lua_State *L, const char *who, const char *key, int v, bool *out)
{
    char buf[80];
    if (lua_type(L, v) != LUA_TBOOLEAN)
        lfail(L, who, "'%s' must be true or false, got %s", key,
              describe(L, v, buf, sizeof buf));
    *out = lua_toboolean(L, v);
}

/* A duration string ("30s", "1h30m") or a whole number of seconds. */
static void get_duration(lua_State *L, const char *who, const char *key, int v, int64_t *out)
{
    char buf[80], nbuf[64];
    const char *s = NULL;
    size_t len = 0;
    if (lua_type(L, v) == LUA_TSTRING || (lua_type(L, v) == LUA_TNUMBER && lua_isinteger(L, v)))
        value_text(L, v, nbuf, sizeof nbuf, &s, &len);
    if (s && strlen(s) == len && duration_parse(s, out) == 0)
        return;
    lfail(L, who, "'%s' must be a duration like 30s, 5m or 1h, got %s", key,
          describe(L, v, buf, sizeof buf));
}

static int choice(lua_State *L, const char *who, const char *key, const char *label, int v,
                  const char *const *choices, size_t n)
{
    char buf[80];
    if (lua_type(L, v) != LUA_TSTRING)
        lfail(L, who, "'%s' must be a string, got %s", key, describe(L, v, buf, sizeof buf));
    const char *s = lua_tostring(L, v);
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, choices[i]) == 0)
            return (int)i;
    struct sbuf b;
    sbuf_init(&b);
    dag_hint(&b, s, choices, n, label);
    char hint[700];
    snprintf(hint, sizeof hint, "%s", b.data);
    sbuf_free(&b);
    return lfail(L, who, "unknown %s %s%s", key, describe(L, v, buf, sizeof buf), hint);
}

static int cmp_key(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

static void free_kvs(struct dag_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

/* A table of name -> string or number (env, params), sorted by name: a Lua
 * table has no order of its own. */
static void get_kvs(lua_State *L, struct lctx *c, const char *who, const char *key, int v,
                    bool ident_names, struct dag_kv **out, size_t *n_out)
{
    char buf[80];
    if (lua_type(L, v) != LUA_TTABLE)
        lfail(L, who, "'%s' must be a table of names to values, like {NAME = \"value\"}, got %s",
              key, describe(L, v, buf, sizeof buf));
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, v)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            lfail(L, who, "'%s' names must be strings, got %s", key,
                  describe(L, -1, buf, sizeof buf));
        if (n == c->cap_keys) {
            c->cap_keys = c->cap_keys ? 2 * c->cap_keys : 16;
            c->keys = xrealloc(c->keys, c->cap_keys * sizeof *c->keys);
        }
        c->keys[n].s = lua_tolstring(L, -1, &c->keys[n].len);
        n++;
    }
    qsort(c->keys, n, sizeof *c->keys, cmp_key);

    /* Owned by the task or DAG from here on, so an error leaks nothing. */
    free_kvs(*out, *n_out);
    *out = xcalloc(n ? n : 1, sizeof **out);
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = c->keys[i].s;
        bool ok = strlen(name) == c->keys[i].len &&
                  (ident_names ? ident_valid(name) : (*name != '\0' && !strchr(name, '=')));
        if (!ok)
            lfail(L, who, "invalid name '%s' in '%s'%s", name, key,
                  ident_names ? " (" DAG_ID_RULE ")" : "");
        lua_pushlstring(L, name, c->keys[i].len);
        lua_rawget(L, v);
        char nbuf[64];
        const char *s;
        size_t len;
        if (!value_text(L, -1, nbuf, sizeof nbuf, &s, &len))
            lfail(L, who, "'%s' value for '%s' must be a string or number, got %s", key, name,
                  describe(L, -1, buf, sizeof buf));
        if (strlen(s) != len)
            lfail(L, who, "'%s' value for '%s' must not contain a NUL character", key, name);
        (*out)[i].key = xstrdup(name);
        (*out)[i].value = xstrdup(s);
        (*out)[i].pos = (struct dag_pos){c->line, 0};
        (*n_out)++;
        lua_pop(L, 1);
    }
}

/* One param's value at v: a string, number or boolean (its type follows), or
 * a table {type = "enum", values = {...}, default = "fast"}. */
static void get_param(lua_State *L, const char *who, struct dag_param *p, int v)
{
    char buf[80], nbuf[64], why[600];
    const char *s;
    size_t len;
    int t = lua_type(L, v);
    if (t == LUA_TBOOLEAN) {
        p->type = DPT_BOOLEAN;
        p->value = xstrdup(lua_toboolean(L, v) ? "true" : "false");
        return;
    }
    if (t == LUA_TNUMBER || t == LUA_TSTRING) {
        value_text(L, v, nbuf, sizeof nbuf, &s, &len);
        if (strlen(s) != len)
            lfail(L, who, "'params' value for '%s' must not contain a NUL character", p->key);
        p->type = t == LUA_TSTRING ? DPT_STRING : lua_isinteger(L, v) ? DPT_INTEGER : DPT_NUMBER;
        p->value = xstrdup(s);
        return;
    }
    if (t != LUA_TTABLE || list_len(L, v) > 0)
        lfail(L, who, "'params' value for '%s' must be a string, number or boolean, or a table "
              "like {type = \"number\", default = 0.1}, got %s", p->key,
              describe(L, v, buf, sizeof buf));
    lua_pushnil(L);
    while (lua_next(L, v)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
        if (strcmp(k, "type") && strcmp(k, "default") && strcmp(k, "values") &&
            strcmp(k, "description"))
            lfail(L, who, "unknown key '%s' in param '%s' (valid keys: type, default, values, "
                  "description)", k, p->key);
    }
    int has_type = raw_field(L, v, "type") != LUA_TNIL;
    int tv = lua_gettop(L);
    int has_values = raw_field(L, v, "values") != LUA_TNIL;
    int vv = lua_gettop(L);
    int dt = raw_field(L, v, "default");
    int dv = lua_gettop(L);
    if (has_type) {
        int pt = lua_type(L, tv) == LUA_TSTRING ? dag_param_type_parse(lua_tostring(L, tv)) : -1;
        if (pt < 0)
            lfail(L, who, "'type' of param '%s' must be one of string, number, integer, boolean, "
                  "enum, got %s", p->key, describe(L, tv, buf, sizeof buf));
        p->type = (enum dag_param_type)pt;
    } else {
        p->type = has_values ? DPT_ENUM
                  : dt == LUA_TBOOLEAN ? DPT_BOOLEAN
                  : dt == LUA_TNUMBER ? (lua_isinteger(L, dv) ? DPT_INTEGER : DPT_NUMBER)
                                      : DPT_STRING;
    }
    if (has_values && p->type != DPT_ENUM)
        lfail(L, who, "'values' is for params of type enum, and param '%s' is a %s", p->key,
              dag_param_type_name(p->type));
    if (p->type == DPT_ENUM) {
        lua_Integer n = has_values && lua_type(L, vv) == LUA_TTABLE ? list_len(L, vv) : -1;
        if (n <= 0)
            lfail(L, who, "param '%s' of type enum needs 'values': a list like "
                  "{\"fast\", \"full\"}", p->key);
        p->values = xcalloc((size_t)n, sizeof *p->values);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, vv, i);
            if (!value_text(L, -1, nbuf, sizeof nbuf, &s, &len) || strlen(s) != len)
                lfail(L, who, "'values' of param '%s' must be strings, got %s", p->key,
                      describe(L, -1, buf, sizeof buf));
            p->values[p->n_values++] = xstrdup(s);
            lua_pop(L, 1);
        }
    }
    if (dt == LUA_TNIL) {
        p->required = true;
        p->value = xstrdup("");
        return;
    }
    if (dt == LUA_TBOOLEAN)
        p->value = xstrdup(lua_toboolean(L, dv) ? "true" : "false");
    else if (value_text(L, dv, nbuf, sizeof nbuf, &s, &len) && strlen(s) == len)
        p->value = xstrdup(s);
    else
        lfail(L, who, "default of param '%s' must be a string, number or boolean, got %s",
              p->key, describe(L, dv, buf, sizeof buf));
    if (dag_param_check(p, p->value, why, sizeof why) < 0)
        lfail(L, who, "default: %s", why);
}

static void get_params(lua_State *L, struct lctx *c, const char *who, int v, struct dag *d)
{
    char buf[80];
    if (lua_type(L, v) != LUA_TTABLE)
        lfail(L, who, "'params' must be a table of names to values, like {NAME = \"value\"}, "
              "got %s", describe(L, v, buf, sizeof buf));
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, v)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            lfail(L, who, "'params' names must be strings, got %s",
                  describe(L, -1, buf, sizeof buf));
        if (n == c->cap_keys) {
            c->cap_keys = c->cap_keys ? 2 * c->cap_keys : 16;
            c->keys = xrealloc(c->keys, c->cap_keys * sizeof *c->keys);
        }
        c->keys[n].s = lua_tolstring(L, -1, &c->keys[n].len);
        n++;
    }
    qsort(c->keys, n, sizeof *c->keys, cmp_key);
    dag_params_free(d->params, d->n_params);
    d->params = xcalloc(n ? n : 1, sizeof *d->params);
    d->n_params = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = c->keys[i].s;
        if (strlen(name) != c->keys[i].len || !ident_valid(name))
            lfail(L, who, "invalid name '%s' in 'params' (" DAG_ID_RULE ")", name);
        struct dag_param *p = &d->params[d->n_params++];
        p->key = xstrdup(name);
        p->pos = (struct dag_pos){c->line, 0};
        int top = lua_gettop(L);
        lua_pushlstring(L, name, c->keys[i].len);
        lua_rawget(L, v);
        get_param(L, who, p, lua_gettop(L));
        lua_settop(L, top);
    }
}

/* --- tasks ----------------------------------------------------------------- */

#define ARGV_EXAMPLE "e.g. {\"echo\", \"hello\"}"

static void set_command(lua_State *L, const char *who, struct dag_task *t, int v)
{
    char buf[80];
    if (lua_type(L, v) == LUA_TSTRING)
        lfail(L, who, "'command' must be a list of arguments (argv), " ARGV_EXAMPLE
              "; for a shell write {\"sh\", \"-c\", \"...\"}");
    if (lua_type(L, v) != LUA_TTABLE)
        lfail(L, who, "'command' must be a list of arguments (argv), " ARGV_EXAMPLE ", got %s",
              describe(L, v, buf, sizeof buf));
    lua_Integer n = list_len(L, v);
    if (n < 0)
        lfail(L, who, "'command' must be a list of arguments (argv), " ARGV_EXAMPLE
              ", got a table with keys other than 1, 2, 3 ...");
    if (n == 0)
        lfail(L, who, "'command' must not be empty: give the program and its arguments, "
              ARGV_EXAMPLE);
    for (lua_Integer i = 1; i <= n; i++) {
        char nbuf[64];
        const char *s;
        size_t len;
        lua_rawgeti(L, v, i);
        if (!value_text(L, -1, nbuf, sizeof nbuf, &s, &len))
            lfail(L, who, "'command' arguments must be strings, got %s",
                  describe(L, -1, buf, sizeof buf));
        if (strlen(s) != len)
            lfail(L, who, "'command' arguments must not contain a NUL character");
        if (i == 1 && *s == '\0')
            lfail(L, who, "'command' must start with the program to run");
        lua_pop(L, 1);
    }
    for (size_t i = 0; i < t->argc; i++)
        free(t->argv[i]);
    free(t->argv);
    t->argc = 0;
    t->argv = xcalloc((size_t)n + 1, sizeof *t->argv);
    for (lua_Integer i = 1; i <= n; i++) {
        char nbuf[64];
        const char *s;
        size_t len;
        lua_rawgeti(L, v, i);
        value_text(L, -1, nbuf, sizeof nbuf, &s, &len);
        t->argv[t->argc++] = xstrdup(s);
        lua_pop(L, 1);
    }
}

static void add_dep(lua_State *L, struct lctx *c, const char *who, struct dag_task *t, int v)
{
    char buf[80];
    if (lua_type(L, v) != LUA_TSTRING)
        lfail(L, who, "'deps' entries must be task ids, got %s", describe(L, v, buf, sizeof buf));
    size_t len;
    const char *s = lua_tolstring(L, v, &len);
    if (strlen(s) != len)
        lfail(L, who, "'deps' entries must not contain a NUL character");
    dag_task_add_dep(t, s, (struct dag_pos){c->line, 0});
}

static void set_deps(lua_State *L, struct lctx *c, const char *who, struct dag_task *t, int v)
{
    char buf[80];
    if (lua_type(L, v) == LUA_TSTRING) {
        add_dep(L, c, who, t, v);
        return;
    }
    lua_Integer n = lua_type(L, v) == LUA_TTABLE ? list_len(L, v) : -1;
    if (n < 0)
        lfail(L, who, "'deps' must be a list of task ids, got %s",
              lua_type(L, v) == LUA_TTABLE ? "a table with keys other than 1, 2, 3 ..."
                                           : describe(L, v, buf, sizeof buf));
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, v, i);
        add_dep(L, c, who, t, lua_gettop(L));
        lua_pop(L, 1);
    }
}

/* Applies one task key (from the task itself or from the default block);
 * the value is at stack index v. */
static void apply_task_key(lua_State *L, struct lctx *c, const char *who, struct dag_task *t,
                           enum dag_task_key key, int v)
{
    const char *name = dag_task_keys[key];
    const struct dag_int_rule *rule = &dag_task_int_rules[key];
    char buf[80];
    switch (key) {
    case DTK_COMMAND: set_command(L, who, t, v); break;
    case DTK_DEPS: set_deps(L, c, who, t, v); break;
    case DTK_ENV: get_kvs(L, c, who, name, v, false, &t->env, &t->n_env); break;
    case DTK_CWD: get_str(L, who, name, v, &t->cwd); break;
    case DTK_RETRIES: get_int(L, who, name, v, rule, &t->retries); break;
    case DTK_RETRY_DELAY: get_duration(L, who, name, v, &t->retry_delay_ms); break;
    case DTK_MAX_RETRY_DELAY: get_duration(L, who, name, v, &t->max_retry_delay_ms); break;
    case DTK_TIMEOUT: get_duration(L, who, name, v, &t->timeout_ms); break;
    case DTK_BACKOFF: get_bool(L, who, name, v, &t->retry_exponential_backoff); break;
    case DTK_TRIGGER_RULE: {
        const char *rules[TR__COUNT];
        for (int i = 0; i < TR__COUNT; i++)
            rules[i] = trigger_rule_name((enum trigger_rule)i);
        t->trigger_rule = (enum trigger_rule)choice(L, who, name, "rules", v, rules, TR__COUNT);
        break;
    }
    case DTK_PRIORITY_WEIGHT: get_int(L, who, name, v, rule, &t->priority_weight); break;
    case DTK_POOL:
        if (lua_type(L, v) == LUA_TSTRING && !ident_valid(lua_tostring(L, v)))
            lfail(L, who, "invalid pool name %s (" DAG_ID_RULE ")",
                  describe(L, v, buf, sizeof buf));
        get_str(L, who, name, v, &t->pool);
        break;
    case DTK_POOL_SLOTS: get_int(L, who, name, v, rule, &t->pool_slots); break;
    case DTK_EXECUTOR: {
        int i = choice(L, who, name, "executors", v, dag_executors, DAG_N_EXECUTORS);
        free(t->executor);
        t->executor = xstrdup(dag_executors[i]);
        break;
    }
    case DTK_SKIP_EXIT_CODE: get_int(L, who, name, v, rule, &t->skip_exit_code); break;
    case DTK_DESCRIPTION: {
        /* Checked for type, but the task model has no place for it yet. */
        char *s = NULL;
        get_str(L, who, name, v, &s);
        free(s);
        break;
    }
    case DTK_KUBERNETES:
        /* As in YAML, only the shape is checked here. */
        if (lua_type(L, v) != LUA_TTABLE)
            lfail(L, who, "'kubernetes' must be a table, got %s", describe(L, v, buf, sizeof buf));
        break;
    case DTK__COUNT: break;
    }
}

/* Applies every task key present in table t, in the fixed key order;
 * seen[k] tells which were. */
static void apply_task_table(lua_State *L, struct lctx *c, const char *who, struct dag_task *t,
                             int tbl, bool *seen)
{
    for (int k = 0; k < DTK__COUNT; k++) {
        if (raw_field(L, tbl, dag_task_keys[k]) != LUA_TNIL) {
            if (seen)
                seen[k] = true;
            apply_task_key(L, c, who, t, (enum dag_task_key)k, lua_gettop(L));
        }
        lua_pop(L, 1);
    }
}

/* --- the kubernetes block ---------------------------------------------------- */

#define KUBE_MAX_VALUES 20000

struct kconv {
    size_t left;                 /* values still allowed */
    char path[512];              /* where the bad value is */
    char why[200];
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sets path to parent + ".key" or "[i]" (i 0-based, as kube_spec reports). */
static void kpath(char *out, size_t n, const char *parent, const char *key, lua_Integer i)
{
    if (key)
        snprintf(out, n, "%.*s%s%s", 400, parent, *parent ? "." : "", key);
    else
        snprintf(out, n, "%.*s[%lld]", 400, parent, (long long)i - 1);
}

/* The Lua value at idx as JSON: a list table (keys 1..n) is an array, any
 * other table an object with string keys (sorted, so messages do not depend
 * on table order), {} an empty object (kube_spec takes it for a list too).
 * Never raises, so nothing it allocated can leak: on error it returns NULL
 * with k->why and k->path set. */
static json_object *lua_json(lua_State *L, int idx, struct kconv *k, const char *path, int depth,
                             bool *bad)
{
    idx = lua_absindex(L, idx);
    if (k->left == 0 || depth > 64 || !lua_checkstack(L, 4)) {
        snprintf(k->path, sizeof k->path, "%s", path);
        snprintf(k->why, sizeof k->why, "too many or too deeply nested values");
        *bad = true;
        return NULL;
    }
    k->left--;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return NULL;
    case LUA_TBOOLEAN: return json_object_new_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return json_object_new_int64((int64_t)lua_tointeger(L, idx));
        /* With tostring()'s text, so cpu = 0.1 is "0.1", not 0.10000000000000001. */
        char nb[64];
        number_text(L, idx, nb, sizeof nb);
        return json_object_new_double_s((double)lua_tonumber(L, idx), nb);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len || len > INT_MAX) {
            snprintf(k->path, sizeof k->path, "%s", path);
            snprintf(k->why, sizeof k->why, "must not contain a NUL character");
            *bad = true;
            return NULL;
        }
        return json_object_new_string_len(s, (int)len);
    }
    case LUA_TTABLE: break;
    default:
        snprintf(k->path, sizeof k->path, "%s", path);
        snprintf(k->why, sizeof k->why, "must be a string, number, boolean or table, got %s",
                 lua_typename(L, lua_type(L, idx)));
        *bad = true;
        return NULL;
    }
    char sub[512];
    lua_Integer n = list_len(L, idx);
    if (n > 0) {
        json_object *a = json_object_new_array();
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            kpath(sub, sizeof sub, path, NULL, i);
            json_object *e = lua_json(L, -1, k, sub, depth + 1, bad);
            lua_pop(L, 1);
            if (*bad) {
                json_object_put(a);
                return NULL;
            }
            json_object_array_add(a, e);
        }
        return a;
    }
    json_object *o = json_object_new_object();
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(k->path, sizeof k->path, "%s", path);
            snprintf(k->why, sizeof k->why, "a table here is a list (1, 2, ...) or a map with "
                     "names as keys, not both");
            lua_pop(L, 2);
            json_object_put(o);
            *bad = true;
            return NULL;
        }
        const char *key = lua_tostring(L, -2);
        kpath(sub, sizeof sub, path, key, 0);
        json_object *e = lua_json(L, -1, k, sub, depth + 1, bad);
        lua_pop(L, 1);
        if (*bad) {
            lua_pop(L, 1);
            json_object_put(o);
            return NULL;
        }
        json_object_object_add(o, key, e);
    }
    size_t nk = (size_t)json_object_object_length(o);
    if (nk < 2)
        return o;
    const char **keys = xcalloc(nk, sizeof *keys);
    size_t i = 0;
    json_object_object_foreach(o, ok, ov) {
        (void)ov;
        keys[i++] = ok;
    }
    qsort(keys, nk, sizeof *keys, cmp_str);
    json_object *sorted = json_object_new_object();
    for (i = 0; i < nk; i++)
        json_object_object_add(sorted, keys[i], json_object_get(json_object_object_get(o, keys[i])));
    free(keys);
    json_object_put(o);
    return sorted;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? xstrndup(path, (size_t)(slash - path) + (slash == path)) : xstrdup(".");
}

/* A kubernetes table (at v, or none when v is 0) merged over the default
 * block's (JSON text, or NULL), parsed into t->kube, then the checks of
 * kube_spec_check_task.  Raises the error at the task's line. */
static void load_kube(lua_State *L, struct lctx *c, const char *who, struct dag_task *t,
                      const char *dag_id, int v, const char *def_text)
{
    if (v || def_text) {
        json_object *tj = NULL, *dj = NULL;
        if (v) {
            struct kconv k = {.left = KUBE_MAX_VALUES};
            bool bad = false;
            tj = lua_json(L, v, &k, "", 0, &bad);
            if (bad)
                lfail(L, who, "kubernetes%s%s: %s", *k.path ? "." : "", k.path, k.why);
        }
        if (def_text)
            dj = json_tokener_parse(def_text);
        json_object *m = kube_spec_merge(dj, tj);
        size_t bytes = m ? strlen(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN)) : 0;
        json_object_put(tj);
        json_object_put(dj);
        char where[512];
        struct kiln_err e = {0};
        char *dir = dir_of(c->path);
        int rc = kube_spec_parse(m, dir, &t->kube, where, sizeof where, &e);
        free(dir);
        json_object_put(m);
        if (rc)
            lfail(L, who, "kubernetes%s%s: %s", *where ? "." : "", where, e.msg);
        /* The spec holds about the block's text, in pieces. */
        charge_model(L, c, 2 * bytes + 256);
    }
    struct kiln_err e = {0};
    if (kube_spec_check_task(t, dag_id, &e))
        lfail(L, who, "%s", e.msg);
}

static size_t str_bytes(const char *s)
{
    return s ? strlen(s) + 1 + 16 : 0;
}

/* Roughly what a task costs in C memory, for the memory cap. */
static size_t task_bytes(const struct dag_task *t)
{
    size_t n = sizeof *t + 64 + str_bytes(t->id) + str_bytes(t->cwd) + str_bytes(t->pool) +
               str_bytes(t->executor);
    n += (t->argc + 1) * sizeof(char *);
    for (size_t i = 0; i < t->argc; i++)
        n += str_bytes(t->argv[i]);
    for (size_t i = 0; i < t->n_env; i++)
        n += sizeof *t->env + str_bytes(t->env[i].key) + str_bytes(t->env[i].value);
    for (size_t i = 0; i < t->n_deps; i++)
        n += sizeof(char *) + sizeof(struct dag_pos) + str_bytes(t->deps[i]) +
             2 * sizeof(uint32_t);
    return n;
}

/* The dag{} behind a handle at idx, or an error naming the mistake. */
static struct ldag *check_handle(lua_State *L, struct lctx *c, int idx, const char *method)
{
    char buf[80];
    if (!is_handle(L, c, idx))
        lfail(L, NULL, "call %s with a colon, on the value dag{} returned: d:%s{ ... } (got %s)",
              method, method, describe(L, idx, buf, sizeof buf));
    size_t i = *(size_t *)lua_touserdata(L, idx);
    return &c->dags[i];
}

/* dag{} keys: YAML's top-level keys, with id for 'dag' and no 'tasks'.  The
 * switch in l_dag() goes by position; 'default' stays last. */
static const char *const lua_top_keys[] = {
    "id",      "description",     "schedule",         "timezone", "start_date",
    "end_date", "catchup", "max_active_runs", "max_active_tasks", "params",
    "default",
};

/* d:task{ id = ..., <task keys> } -> the task id */
static int l_task(lua_State *L)
{
    struct lctx *c = ctx_of(L);
    char buf[80];
    c->line = current_line(L, c);
    struct ldag *ld = check_handle(L, c, 1, "task");
    if (lua_type(L, 2) != LUA_TTABLE)
        lfail(L, NULL, "d:task{ ... } takes a table of task settings, got %s",
              describe(L, 2, buf, sizeof buf));
    lua_settop(L, 2);

    if (raw_field(L, 2, "id") == LUA_TNIL)
        lfail(L, NULL, "a task needs an 'id': d:task{ id = \"train\", command = {...} }");
    if (lua_type(L, -1) != LUA_TSTRING)
        lfail(L, NULL, "task 'id' must be a string, got %s", describe(L, -1, buf, sizeof buf));
    size_t idlen;
    const char *id = lua_tolstring(L, -1, &idlen);   /* index 3: stays alive */
    if (strlen(id) != idlen || !ident_valid(id))
        lfail(L, NULL, "invalid task id %s (" DAG_ID_RULE ")", describe(L, -1, buf, sizeof buf));
    char who[300];
    snprintf(who, sizeof who, "task '%s'", id);

    const char *cands[DTK__COUNT + 1];
    cands[0] = "id";
    memcpy(cands + 1, dag_task_keys, sizeof dag_task_keys);
    check_keys(L, 2, who, cands, DTK__COUNT + 1, cands, DTK__COUNT + 1);

    /* Built on a scratch DAG that the context owns, then moved over. */
    dag_free(c->scratch);
    c->scratch = dag_new("scratch", c->path);
    struct dag_task *t = dag_add_task(c->scratch, id, (struct dag_pos){c->line, 0});
    bool seen[DTK__COUNT] = {false};
    apply_task_table(L, c, who, t, 2, seen);
    lua_getiuservalue(L, 1, 1);
    const char *def_kube = NULL;
    if (lua_type(L, -1) == LUA_TTABLE) {
        int def = lua_gettop(L);
        for (int k = 0; k < DTK__COUNT; k++) {
            /* The default kubernetes block is frozen as JSON text (load_default)
             * and merged under the task's below. */
            if (k == DTK_KUBERNETES) {
                if (raw_field(L, def, dag_task_keys[k]) == LUA_TSTRING)
                    def_kube = lua_tostring(L, -1);    /* the default table keeps it alive */
                lua_pop(L, 1);
                continue;
            }
            if (!seen[k] && raw_field(L, def, dag_task_keys[k]) != LUA_TNIL)
                apply_task_key(L, c, who, t, (enum dag_task_key)k, lua_gettop(L));
            if (!seen[k])
                lua_pop(L, 1);
        }
    }
    if (t->argc == 0)
        lfail(L, NULL, "task '%s' has no 'command'", id);
    int kv = 0;
    if (raw_field(L, 2, dag_task_keys[DTK_KUBERNETES]) == LUA_TTABLE)
        kv = lua_gettop(L);
    load_kube(L, c, who, t, ld->d->id, kv, def_kube);
    lua_pop(L, 2);
    charge_model(L, c, task_bytes(t));

    struct dag_task *dst = dag_add_task(ld->d, id, t->pos);
    char *dst_id = dst->id;
    uint32_t index = dst->index;
    *dst = *t;
    dst->id = dst_id;
    dst->index = index;
    char *src_id = t->id;
    memset(t, 0, sizeof *t);
    t->id = src_id;

    lua_settop(L, 3);
    return 1;
}

/* The default block: checked now, on a scratch task, so that a bad default
 * is reported at dag{} even if every task overrides it; then frozen (copied
 * two levels deep) so later changes to the caller's table do not apply. */
static void load_default(lua_State *L, struct lctx *c, int v)
{
    char buf[80];
    const char *who = "'default'";
    if (lua_type(L, v) != LUA_TTABLE)
        lfail(L, NULL, "'default' must be a table of task settings, got %s",
              describe(L, v, buf, sizeof buf));
    check_keys(L, v, who, dag_task_keys, DTK__COUNT, dag_task_keys, DTK__COUNT);
    dag_free(c->scratch);
    c->scratch = dag_new("default", c->path);
    struct dag_task *t = dag_add_task(c->scratch, "default", (struct dag_pos){c->line, 0});
    apply_task_table(L, c, who, t, v, NULL);

    lua_newtable(L);
    int copy = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, v)) {
        if (lua_type(L, -1) == LUA_TTABLE) {
            int inner = lua_gettop(L);
            lua_newtable(L);
            lua_pushnil(L);
            while (lua_next(L, inner)) {
                lua_pushvalue(L, -2);
                lua_insert(L, -2);
                lua_rawset(L, -4);
            }
            lua_replace(L, inner);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, copy);
    }
    /* The kubernetes block nests deeper than the copy above: freeze it as
     * JSON text, checked alone (tasks may add the image). */
    if (raw_field(L, v, dag_task_keys[DTK_KUBERNETES]) == LUA_TTABLE) {
        struct kconv k = {.left = KUBE_MAX_VALUES};
        bool bad = false;
        json_object *j = lua_json(L, -1, &k, "", 0, &bad);
        if (bad)
            lfail(L, who, "kubernetes%s%s: %s", *k.path ? "." : "", k.path, k.why);
        struct kiln_err e = {0};
        char where[512];
        struct kube_task_spec *ks = NULL;
        int rc = kube_spec_parse(j, NULL, &ks, where, sizeof where, &e);
        kube_spec_free(ks);
        if (rc) {
            json_object_put(j);
            lfail(L, who, "kubernetes%s%s: %s", *where ? "." : "", where, e.msg);
        }
        char *text = xstrdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        json_object_put(j);
        lua_pop(L, 1);
        lua_pushstring(L, dag_task_keys[DTK_KUBERNETES]);
        lua_pushstring(L, text);
        free(text);
        lua_rawset(L, copy);
    } else {
        lua_pop(L, 1);
    }
}

/* dag{ id = ..., ... } -> a handle with :task{} */
static int l_dag(lua_State *L)
{
    struct lctx *c = ctx_of(L);
    char buf[80];
    c->line = current_line(L, c);
    if (lua_type(L, 1) != LUA_TTABLE)
        lfail(L, NULL, "dag{ ... } takes a table of DAG settings, got %s",
              describe(L, 1, buf, sizeof buf));
    lua_settop(L, 1);
    const char *who = "dag{}";
    check_keys(L, 1, who, lua_top_keys, ARRAY_LEN(lua_top_keys), lua_top_keys,
               ARRAY_LEN(lua_top_keys));

    if (c->n_dags == c->cap_dags) {
        c->cap_dags = c->cap_dags ? 2 * c->cap_dags : 4;
        c->dags = xrealloc(c->dags, c->cap_dags * sizeof *c->dags);
    }
    char *file_id = dag_id_from_path(c->path);
    struct dag *d = dag_new(file_id, c->path);
    free(file_id);
    size_t index = c->n_dags++;
    c->dags[index] = (struct ldag){d, false};
    charge_model(L, c, sizeof *d + 256);

    /* In the order of lua_top_keys, so that of two bad values the same
     * one is always reported; the default block comes last. */
    bool have_id = false;
    for (size_t k = 0; k < ARRAY_LEN(lua_top_keys) - 1; k++) {
        lua_settop(L, 1);
        const char *name = lua_top_keys[k];
        if (raw_field(L, 1, name) == LUA_TNIL)
            continue;
        switch (k) {
        case 0: /* id */
            get_str(L, who, name, 2, &d->id);
            if (!ident_valid(d->id))
                lfail(L, who, "invalid dag id %s (" DAG_ID_RULE ")",
                      describe(L, 2, buf, sizeof buf));
            have_id = true;
            break;
        case 1: get_str(L, who, name, 2, &d->description); break;
        case 2:
            get_str(L, who, name, 2, &d->schedule);
            /* "none" reads better than nil for a manual-only DAG. */
            if (strcasecmp(d->schedule, "none") == 0) {
                free(d->schedule);
                d->schedule = NULL;
            }
            break;
        case 3: get_str(L, who, name, 2, &d->timezone); break;
        case 4: get_str(L, who, name, 2, &d->start_date); break;
        case 5: get_str(L, who, name, 2, &d->end_date); break;
        case 6: get_bool(L, who, name, 2, &d->catchup); break;
        case 7: get_int(L, who, name, 2, &dag_max_active_rule, &d->max_active_runs); break;
        case 8: get_int(L, who, name, 2, &dag_max_active_rule, &d->max_active_tasks); break;
        case 9: get_params(L, c, who, 2, d); break;
        }
    }
    lua_settop(L, 1);
    {
        /* schedule, timezone, start_date, end_date must make a schedule. */
        struct dag probe = *d;
        struct schedule s;
        struct kiln_err e = { 0 };
        if (!probe.schedule)
            probe.schedule = "* * * * *";
        if (schedule_from_dag(&probe, &s, &e) < 0)
            lfail(L, who, "%s", e.msg);
        schedule_free(&s);
    }
    if (!have_id && !ident_valid(d->id))
        lfail(L, who, "no 'id', and the file name '%s' is not a valid dag id (" DAG_ID_RULE ")",
              d->id);

    /* Index 2: the frozen default block, or nil. */
    if (raw_field(L, 1, "default") != LUA_TNIL) {
        load_default(L, c, 2);
        lua_replace(L, 2);
        lua_settop(L, 2);
    }

    size_t *ud = lua_newuserdatauv(L, sizeof *ud, 1);
    *ud = index;
    luaL_setmetatable(L, HANDLE_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    c->dags[index].ok = true;
    return 1;
}

static int l_handle_index(lua_State *L)
{
    struct lctx *c = ctx_of(L);
    size_t i = *(size_t *)lua_touserdata(L, 1);
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    if (strcmp(k, "task") == 0)
        lua_pushcfunction(L, l_task);
    else if (strcmp(k, "id") == 0)
        lua_pushstring(L, c->dags[i].d->id);
    else
        lua_pushnil(L);
    return 1;
}

static int l_handle_newindex(lua_State *L)
{
    struct lctx *c = ctx_of(L);
    c->line = current_line(L, c);
    return lfail(L, NULL, "a dag has no fields to set: add tasks with d:task{ ... }");
}

static int l_handle_tostring(lua_State *L)
{
    struct lctx *c = ctx_of(L);
    size_t i = *(size_t *)lua_touserdata(L, 1);
    lua_pushfstring(L, "dag '%s'", c->dags[i].d->id);
    return 1;
}

/* --- the sandbox ----------------------------------------------------------- */

/* Calls the function in upvalue 1 with this call's arguments. */
static int call_original(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* load(chunk [, name [, mode [, env]]]): text chunks only, whatever mode
 * says; a binary chunk gets "attempt to load a binary chunk (mode is 't')". */
static int w_load(lua_State *L)
{
    if (lua_gettop(L) < 3)
        lua_settop(L, 3);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    return call_original(L);
}

/* setmetatable without __gc: finalizers run with hooks off, where neither the
 * budget nor an error could stop them. */
static int w_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in DAG files");
        lua_pop(L, 1);
    }
    return call_original(L);
}

/* The library functions that can loop in C, where no hook runs: each stock
 * function of liblua is called by a wrapper of ours that knows, before it
 * runs, a bound on the work it will do, refuses a call whose bound is
 * unreasonable, and charges the bound (or, for our own plain find, the
 * work done) to the instruction budget.  What stays unwrapped does work
 * bounded by the size of its arguments and result, which the memory cap
 * bounds. */

static size_t mul_sat(size_t a, size_t b)
{
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* Bytes Lua may still allocate before the memory cap. */
static size_t memory_left(struct lctx *c)
{
    size_t held = c->used + c->model;
    return held < c->lim.memory ? c->lim.memory - held : 0;
}

/* Functions whose work grows with the length of their string arguments
 * (tonumber, rawequal, string.byte, string.pack, utf8.len ...): charged one
 * step per 16 bytes of them, then run. */
static int w_charge_strlen(lua_State *L)
{
    size_t total = 0;
    for (int i = 1; i <= 2; i++) {
        size_t l = 0;
        if (lua_type(L, i) == LUA_TSTRING)
            lua_tolstring(L, i, &l);
        total += l;
    }
    charge(L, 1 + (total >> 4));
    return call_original(L);
}

/* string.rep(s, n [, sep]) makes n * #s + (n - 1) * #sep bytes.  A result
 * that cannot fit in the memory left stops the file at once, as the
 * allocation would once it reached the cap; rep("", n) is "" at once,
 * where the stock function would loop n times in C, allocating nothing,
 * for ever in effect when n is 2^63 - 1.  What runs is then bounded by the
 * memory left. */
static int w_rep(lua_State *L)
{
    struct lctx *c = ctx_of(L);
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || (l == 0 && lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t times = (lua_Unsigned)n > SIZE_MAX ? SIZE_MAX : (size_t)n;
    size_t bytes = add_sat(mul_sat(times, l), mul_sat(times - 1, lsep));
    if (bytes > memory_left(c)) {
        stop(c, STOP_MEMORY);
        return raise_stop(L, c);
    }
    charge(L, 1 + (bytes >> 4));
    return call_original(L);
}

/* --- tables -----------------------------------------------------------------
 *
 * The table functions loop in C over a range of elements, which the
 * caller chooses: table.move({}, 1, math.maxinteger, 2) loops for ever
 * without allocating anything.  At every step they may run a metamethod:
 * __len can claim any length, __index and __newindex can be C functions
 * (a concat whose __index is table.concat gets "" for every index), and an
 * __index chain can be 2000 tables long per access.  Nor does the
 * memory cap bound the walk of a plain table: #t is a border, which can lie
 * far past the elements held (t[1], t[2], t[4] ... t[2^61] set, in that
 * order from the largest: 62 elements and #t = 2^61), and insert, remove
 * and sort walk up to it over nils.  So the wrappers take plain tables (no
 * __index, __newindex or __len: every access is one raw lookup), work out
 * the elements the stock function will walk, refuse more than WALK_MAX and
 * charge one instruction per element before it runs.  Elements that exist
 * are then bounded twice: by the charge, and by the memory that holds them
 * (concat's result too).  sort compares through sort_less, which charges
 * each comparison (a comparison of two long strings is a long memcmp, and
 * quicksort makes n log n of them, or more). */

/* Raises unless the value at arg is a table without __index, __newindex
 * or __len (other metamethods, __lt for instance, are not the table
 * functions' business). */
static void plain_table(lua_State *L, int arg, const char *who)
{
    static const char *const events[] = {"__index", "__newindex", "__len"};
    luaL_checktype(L, arg, LUA_TTABLE);
    if (!lua_getmetatable(L, arg))
        return;
    for (size_t i = 0; i < ARRAY_LEN(events); i++) {
        lua_pushstring(L, events[i]);
        if (lua_rawget(L, -2) != LUA_TNIL)
            luaL_error(L, "%s: the table has an %s metamethod: in DAG files the table "
                          "functions take plain tables",
                       who, events[i]);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Refuses a walk over elements from..to of more than WALK_MAX; charges one
 * instruction per element. */
static void walk(lua_State *L, const char *who, lua_Integer from, lua_Integer to)
{
    if (to < from)
        return;
    lua_Unsigned n = (lua_Unsigned)to - (lua_Unsigned)from; /* elements - 1 */
    if (n >= WALK_MAX)
        luaL_error(L, "%s: elements %I to %I: in DAG files a table function walks at most "
                      "%d elements",
                   who, (LUAI_UACINT)from, (LUAI_UACINT)to, WALK_MAX);
    charge(L, (size_t)n + 1);
}

/* The integer argument at arg, or dflt where it is absent; false where it
 * is not an integer (the stock function raises its own error then). */
static bool int_arg(lua_State *L, int arg, lua_Integer dflt, lua_Integer *v)
{
    int ok = 1;
    *v = lua_isnoneornil(L, arg) ? dflt : lua_tointegerx(L, arg, &ok);
    return ok;
}

/* #t of a plain table: the length the stock functions will use. */
static lua_Integer plain_len(lua_State *L, int arg)
{
    lua_Unsigned n = lua_rawlen(L, arg);
    return n > (lua_Unsigned)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)n;
}

/* insert(t, v) appends; insert(t, pos, v) moves pos..#t up one. */
static int w_insert(lua_State *L)
{
    plain_table(L, 1, "table.insert");
    lua_Integer n = plain_len(L, 1), pos;
    if (lua_gettop(L) == 3 && int_arg(L, 2, 0, &pos) && pos >= 1 && pos <= n)
        walk(L, "table.insert", pos, n);
    return call_original(L);
}

/* remove(t [, pos]) moves pos+1..#t down one (pos defaults to #t). */
static int w_remove(lua_State *L)
{
    plain_table(L, 1, "table.remove");
    lua_Integer n = plain_len(L, 1), pos;
    if (int_arg(L, 2, n, &pos) && pos >= 1 && pos <= n)
        walk(L, "table.remove", pos, n);
    return call_original(L);
}

/* concat(t [, sep [, i [, j]]]) reads i..j (1..#t). */
static int w_concat(lua_State *L)
{
    plain_table(L, 1, "table.concat");
    lua_Integer i, j;
    if (int_arg(L, 3, 1, &i) && int_arg(L, 4, plain_len(L, 1), &j))
        walk(L, "table.concat", i, j);
    return call_original(L);
}

/* unpack(t [, i [, j]]) reads i..j (1..#t). */
static int w_unpack(lua_State *L)
{
    plain_table(L, 1, "table.unpack");
    lua_Integer i, j;
    if (int_arg(L, 2, 1, &i) && int_arg(L, 3, plain_len(L, 1), &j))
        walk(L, "table.unpack", i, j);
    return call_original(L);
}

/* move(a1, f, e, t [, a2]) reads a1[f..e] and writes as many to a2. */
static int w_move(lua_State *L)
{
    plain_table(L, 1, "table.move");
    if (!lua_isnoneornil(L, 5))
        plain_table(L, 5, "table.move");
    lua_Integer f, e;
    if (int_arg(L, 2, 0, &f) && int_arg(L, 3, 0, &e))
        walk(L, "table.move", f, e);
    return call_original(L);
}

/* The comparison table.sort makes: upvalue 1 is the file's function, or
 * nil for '<'.  Charged one instruction, plus one per 16 bytes of the
 * shorter of two strings (what '<' compares). */
static int sort_less(lua_State *L)
{
    size_t la = 0, lb = 0;
    if (lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING) {
        lua_tolstring(L, 1, &la);
        lua_tolstring(L, 2, &lb);
    }
    charge(L, 1 + ((la < lb ? la : lb) >> 4));
    lua_settop(L, 2);
    if (lua_isnil(L, lua_upvalueindex(1))) {
        lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* sort(t [, comp]) sorts 1..#t, comparing through sort_less. */
static int w_sort(lua_State *L)
{
    plain_table(L, 1, "table.sort");
    walk(L, "table.sort", 1, plain_len(L, 1));
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_pushcclosure(L, sort_less, 1);
    return call_original(L);
}

/* --- patterns ---------------------------------------------------------------
 *
 * Lua's matcher runs in C from start to end, and backtracks: one call such as
 *     ("a"):rep(100):find(".-.-.-.-.-.-b")
 * runs for hours, and no hook can stop it.  Its work per attempt grows only
 * through the repetition items (* + - ?, which try every length and
 * backtrack), %b (scans to the end of the subject) and back-references
 * (%1-%9: compare a whole capture).  Without them every pattern item
 * matches exactly one character (or none: anchors, captures, %f), so one
 * attempt is a single forward pass of at most #p steps, and the matcher
 * tries at most #s + 2 start positions (gmatch and gsub may try a position
 * twice, after an empty match).  So DAG files get patterns without those
 * items, and a call is charged (#s + 2) * (#p + #replacement + 1)
 * instructions (twice that for gmatch and gsub; once only for a pattern
 * anchored with '^') before the stock function runs: a call that could
 * not finish within the budget stops the file before it starts. */

enum pat { PAT_FIND, PAT_MATCH, PAT_GMATCH, PAT_GSUB };
static const char *const pat_name[] = {"string.find", "string.match", "string.gmatch",
                                       "string.gsub"};

/* Lua's magic characters: a pattern without them is plain text. */
static bool has_magic(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (memchr("^$*+?.([%-", p[i], 10))
            return true;
    return false;
}

/* The first thing in the pattern that DAG files refuse, or 0: the
 * character of a repetition item (*, +, - or ?, refused even where Lua
 * would read it as a plain character, like a leading '*': %* matches it),
 * or 'b' for %b, or the digit of a back-reference %0-%9.  Sets are read as
 * Lua reads them: after '[' and an optional '^' the first character
 * belongs to the set even if it is ']'; '%' escapes the next character;
 * the set ends at the next ']'.  Inside a set these characters are plain
 * ("[a-z]" is a range).  %f is followed by a set, read as one. */
static char pattern_refusal(const char *p, size_t lp, bool *escaped)
{
    size_t i = 0;
    while (i < lp) {
        char ch = p[i];
        if (ch == '%') {
            if (i + 1 < lp && (p[i + 1] == 'b' || isdigit((unsigned char)p[i + 1]))) {
                *escaped = true;
                return p[i + 1];
            }
            i += 2;
        } else if (ch == '[') {
            i++;
            if (i < lp && p[i] == '^')
                i++;
            do {
                if (i < lp && p[i] == '%')
                    i++;
                i++;
            } while (i < lp && p[i] != ']');
            i++;
        } else if (ch != '\0' && memchr("*+-?", ch, 4)) {
            *escaped = false;
            return ch;
        } else {
            i++;
        }
    }
    return 0;
}

/* The 1-based position, 1 to len + 1, where a search with the init at arg
 * starts (default 1; negative counts from the end; clipped to the string:
 * an init past the end finds nothing, so clipping it only overestimates). */
static size_t start_pos(lua_State *L, int arg, size_t len)
{
    lua_Integer i = luaL_optinteger(L, arg, 1);
    if (i > 0)
        return (lua_Unsigned)i > len ? len + 1 : (size_t)i;
    lua_Unsigned back = (lua_Unsigned)0 - (lua_Unsigned)i; /* -i, even for mininteger */
    if (i == 0 || back >= len)
        return 1;
    return len - (size_t)back + 1;
}

/* Checks and charges a pattern call, then runs the stock function
 * (upvalue 1). */
static int pattern_call(lua_State *L, enum pat kind)
{
    const char *who = pat_name[kind];
    size_t ls, lp, lr = 0;
    luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    bool escaped = false;
    char bad = pattern_refusal(p, lp, &escaped);
    if (bad) {
        char shown[80];
        describe(L, 2, shown, sizeof shown);
        if (!escaped)
            return luaL_error(L, "%s: pattern %s repeats an item with '%c': patterns in DAG "
                              "files have no repetition (* + - ?), which can backtrack for "
                              "hours; write %%%c for the character itself%s",
                              who, shown, bad, bad,
                              kind == PAT_FIND ? ", or string.find(s, text, 1, true) for "
                                                 "plain text" : "");
        return luaL_error(L, "%s: pattern %s uses %%%c: patterns in DAG files have no "
                          "balanced matches (%%b) or back-references (%%1-%%9)",
                          who, shown, bad);
    }
    if (kind == PAT_GSUB) {
        int t = lua_type(L, 3);
        if (t == LUA_TSTRING)
            lua_tolstring(L, 3, &lr);
        else if (t == LUA_TNUMBER)
            lr = 64; /* the most a number's text takes */
        else if (t == LUA_TTABLE)
            plain_table(L, 3, who);
    }
    size_t attempts;
    if (kind != PAT_GMATCH && lp > 0 && p[0] == '^')
        attempts = 1;
    else if (kind == PAT_GSUB)
        attempts = 2 * (ls + 2);
    else
        attempts = (ls + 2 - start_pos(L, 3, ls)) * (kind == PAT_GMATCH ? 2 : 1);
    charge(L, mul_sat(attempts, add_sat(add_sat(lp, lr), 1)));
    return call_original(L);
}

/* string.find: a search for plain text (plain = true, or a pattern without
 * magic characters, which Lua searches as plain text too) is ours, with
 * memmem, which takes time linear in #s (Lua's own loop compares the text
 * at every candidate position: #s * #p steps); it is charged one
 * instruction per 16 bytes it scanned.  The init rules are Lua's: default
 * 1, negative counts from the end, past #s + 1 finds nothing.  A pattern
 * goes through pattern_call. */
static int w_find(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    if (!lua_toboolean(L, 4) && has_magic(p, lp))
        return pattern_call(L, PAT_FIND);
    lua_Integer init = luaL_optinteger(L, 3, 1);
    size_t start; /* 0-based */
    if (init > 0) {
        if ((lua_Unsigned)init - 1 > ls) {
            luaL_pushfail(L);
            return 1;
        }
        start = (size_t)init - 1;
    } else {
        lua_Unsigned back = (lua_Unsigned)0 - (lua_Unsigned)init;
        start = back > ls ? 0 : ls - (size_t)back;
    }
    const char *hay = s + start;
    size_t hl = ls - start;
    const char *at = lp == 0 ? hay : memmem(hay, hl, p, lp);
    charge(L, 1 + ((at ? (size_t)(at - hay) + lp : hl) >> 4));
    if (at == NULL) {
        luaL_pushfail(L);
        return 1;
    }
    lua_pushinteger(L, (lua_Integer)(at - s) + 1);
    lua_pushinteger(L, (lua_Integer)(at - s) + (lua_Integer)lp);
    return 2;
}

static int w_match(lua_State *L)
{
    return pattern_call(L, PAT_MATCH);
}

static int w_gmatch(lua_State *L)
{
    return pattern_call(L, PAT_GMATCH);
}

static int w_gsub(lua_State *L)
{
    return pattern_call(L, PAT_GSUB);
}

/* print(...) writes "FILE:LINE: values" to stderr, at most PRINT_CAP bytes
 * per file. */
static int l_print(lua_State *L)
{
    struct lctx *c = ctx_of(L);
    if (c->printed >= PRINT_CAP)
        return 0;
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (len > PRINT_CAP - c->printed)
        len = PRINT_CAP - c->printed;
    c->printed += len;
    fprintf(stderr, "%s:%d: %.*s\n", c->path, current_line(L, c), (int)len, s);
    if (c->printed >= PRINT_CAP)
        fprintf(stderr, "%s: further print output dropped\n", c->path);
    return 0;
}

static void wrap(lua_State *L, int table, const char *name, lua_CFunction f)
{
    lua_getfield(L, table, name);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, table, name);
}

static void set_nil(lua_State *L, int table, const char *name)
{
    lua_pushnil(L);
    lua_setfield(L, table, name);
}

/* Opens the allowed libraries and the API (run protected). */
static int setup(lua_State *L)
{
    struct lctx *c = ctx_of(L);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    int g = 1, str = 2, tab = 3, math = 4, utf8 = 5;

    set_nil(L, g, "dofile");
    set_nil(L, g, "loadfile");
    set_nil(L, g, "collectgarbage");
    set_nil(L, g, "require");
    wrap(L, g, "load", w_load);
    wrap(L, g, "setmetatable", w_setmetatable);
    wrap(L, g, "tonumber", w_charge_strlen);
    wrap(L, g, "rawequal", w_charge_strlen);
    lua_pushcfunction(L, l_print);
    lua_setfield(L, g, "print");

    set_nil(L, str, "dump");
    wrap(L, str, "find", w_find);
    wrap(L, str, "match", w_match);
    wrap(L, str, "gmatch", w_gmatch);
    wrap(L, str, "gsub", w_gsub);
    wrap(L, str, "rep", w_rep);
    wrap(L, str, "byte", w_charge_strlen);
    wrap(L, str, "pack", w_charge_strlen);
    wrap(L, str, "unpack", w_charge_strlen);
    wrap(L, str, "packsize", w_charge_strlen);
    wrap(L, utf8, "len", w_charge_strlen);
    wrap(L, utf8, "offset", w_charge_strlen);
    wrap(L, utf8, "codepoint", w_charge_strlen);

    /* table.pack stays stock: its work is its arguments. */
    wrap(L, tab, "insert", w_insert);
    wrap(L, tab, "remove", w_remove);
    wrap(L, tab, "concat", w_concat);
    wrap(L, tab, "unpack", w_unpack);
    wrap(L, tab, "move", w_move);
    wrap(L, tab, "sort", w_sort);

    /* The same file gives the same DAG: math.random starts from a fixed seed. */
    lua_getfield(L, math, "randomseed");
    lua_pushinteger(L, 0);
    lua_call(L, 1, 0);

    /* os: time, date and clock only (the rest is never reachable: the full
     * table is dropped, and package.loaded does not exist). */
    lua_pushcfunction(L, luaopen_os);
    lua_call(L, 0, 1);
    lua_createtable(L, 0, 3);
    static const char *const os_keep[] = {"time", "date", "clock"};
    for (size_t i = 0; i < ARRAY_LEN(os_keep); i++) {
        lua_getfield(L, -2, os_keep[i]);
        lua_setfield(L, -2, os_keep[i]);
    }
    lua_setfield(L, g, "os");
    lua_pop(L, 1);

    luaL_newmetatable(L, HANDLE_MT);
    lua_pushcfunction(L, l_handle_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_handle_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, l_handle_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, HANDLE_MT);
    lua_setfield(L, -2, "__metatable");
    c->mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_dag);
    lua_setfield(L, g, "dag");

    /* Lua shortens long chunk names in its messages ("...ags/sweep.lua:3:");
     * an empty chunk with the same name tells how, so that messages can be
     * given the full path back. */
    if (luaL_loadbufferx(L, "", 0, c->chunkname, "t") != LUA_OK)
        return lua_error(L);
    lua_Debug ar;
    lua_getinfo(L, ">S", &ar);
    snprintf(c->short_src, sizeof c->short_src, "%s", ar.short_src);
    lua_settop(L, 0);
    return 0;
}

/* Whether msg is "SHORT_SRC:LINE: ..." (a message Lua positioned in this
 * file); *skip is the length of the SHORT_SRC to replace with the path. */
static bool has_own_prefix(struct lctx *c, const char *msg, size_t *skip)
{
    size_t sl = strlen(c->short_src);
    if (strncmp(msg, c->short_src, sl) != 0 || msg[sl] != ':' ||
        !isdigit((unsigned char)msg[sl + 1]))
        return false;
    *skip = sl;
    return true;
}

/* Message handler of the file's chunk: every error gets FILE:LINE. */
static int msgh(lua_State *L)
{
    struct lctx *c = ctx_of(L);
    if (c->stop != STOP_NONE)
        return 1; /* replaced by the stop message */
    size_t skip;
    if (lua_type(L, 1) == LUA_TSTRING) {
        const char *msg = lua_tostring(L, 1);
        if (strcmp(msg, c->raised) == 0)
            return 1;
        if (has_own_prefix(c, msg, &skip)) {
            lua_pushfstring(L, "%s%s", c->path, msg + skip);
            return 1;
        }
    } else {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        lua_replace(L, 1);
    }
    int line = current_line(L, c);
    if (line > 0)
        lua_pushfstring(L, "%s:%d: %s", c->path, line, lua_tostring(L, 1));
    else
        lua_pushfstring(L, "%s: %s", c->path, lua_tostring(L, 1));
    return 1;
}

static void ctx_free(struct lctx *c)
{
    for (size_t i = 0; i < c->n_dags; i++)
        dag_free(c->dags[i].d);
    free(c->dags);
    dag_free(c->scratch);
    free(c->keys);
    free(c->chunkname);
}

/* The error of a failed chunk, from the top of the stack. */
static int chunk_error(lua_State *L, struct lctx *c, int status, struct kiln_err *err)
{
    if (c->stop != STOP_NONE)
        return kiln_err_set(err, KILN_EINVALID, "%s", c->stopmsg);
    if (status == LUA_ERRMEM) {
        stop(c, STOP_MEMORY);
        return kiln_err_set(err, KILN_EINVALID, "%s", c->stopmsg);
    }
    int code = status == LUA_ERRSYNTAX ? KILN_EPARSE : KILN_EINVALID;
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error";
    size_t skip;
    if (strncmp(msg, c->path, strlen(c->path)) == 0 && msg[strlen(c->path)] == ':')
        return kiln_err_set(err, code, "%s", msg);
    if (has_own_prefix(c, msg, &skip))
        return kiln_err_set(err, code, "%s%s", c->path, msg + skip);
    if (status == LUA_ERRERR)
        return kiln_err_set(err, code, "%s: error while handling an error: %s", c->path, msg);
    return kiln_err_set(err, code, "%s: %s", c->path, msg);
}

/* After the chunk ran: the DAG it returned, or the only one it made. */
static int pick_dag(lua_State *L, struct lctx *c, size_t *index, struct kiln_err *err)
{
    char buf[80];
    if (is_handle(L, c, -1)) {
        *index = *(size_t *)lua_touserdata(L, -1);
        return 0;
    }
    if (!lua_isnil(L, -1))
        return kiln_err_set(err, KILN_EINVALID,
                            "%s: the file returned %s: return the value of dag{ ... }, or "
                            "nothing",
                            c->path, describe(L, -1, buf, sizeof buf));
    size_t n = 0;
    for (size_t i = 0; i < c->n_dags; i++)
        if (c->dags[i].ok) {
            *index = i;
            n++;
        }
    if (n == 1)
        return 0;
    if (n == 0)
        return kiln_err_set(err, KILN_EINVALID,
                            "%s: no DAG: call dag{ id = \"...\" } and add tasks with "
                            "d:task{ ... }",
                            c->path);
    return kiln_err_set(err, KILN_EINVALID,
                        "%s: %zu DAGs were made with dag{}: return the one this file defines "
                        "(return d)",
                        c->path, n);
}

int load_lua_buf_limits(const char *path, const char *buf, size_t len,
                        const struct load_lua_limits *limits, struct dag **out,
                        struct kiln_err *err)
{
    *out = NULL;
    struct lctx c;
    memset(&c, 0, sizeof c);
    c.path = path;
    c.chunkname = xasprintf("@%s", path);
    c.lim = limits ? *limits : load_lua_default_limits;
    if (c.lim.instructions == 0)
        c.lim.instructions = 1;
    c.period = c.lim.instructions < HOOK_PERIOD ? (int)c.lim.instructions : HOOK_PERIOD;
    c.mono_start = clock_ns(CLOCK_MONOTONIC);
    c.cpu_start = clock_ns(CLOCK_THREAD_CPUTIME_ID);

    lua_State *L = lua_newstate(l_alloc, &c);
    if (L == NULL) {
        ctx_free(&c);
        return kiln_err_set(err, -ENOMEM, "%s: cannot create a Lua state", path);
    }
    c.L = L;
    int rc = 0;
    lua_pushcfunction(L, setup);
    int status = lua_pcall(L, 0, 0, 0);
    if (status != LUA_OK) {
        rc = chunk_error(L, &c, status, err);
        goto done;
    }

    lua_pushcfunction(L, msgh);
    status = luaL_loadbufferx(L, buf ? buf : "", buf ? len : 0, c.chunkname, "t");
    if (status != LUA_OK) {
        rc = chunk_error(L, &c, status, err);
        goto done;
    }
    lua_sethook(L, hook, LUA_MASKCOUNT, c.period);
    status = lua_pcall(L, 0, 1, 1);
    lua_sethook(L, NULL, 0, 0);
    if (c.stop != STOP_NONE || status != LUA_OK) {
        rc = chunk_error(L, &c, status, err);
        goto done;
    }
    size_t index = 0;
    rc = pick_dag(L, &c, &index, err);
    if (rc == 0 && c.dags[index].d->n_tasks == 0)
        rc = kiln_err_set(err, KILN_EINVALID, "%s: dag '%s' has no tasks: add them with "
                          "d:task{ ... }", path, c.dags[index].d->id);
    if (rc == 0) {
        *out = c.dags[index].d;
        c.dags[index].d = NULL;
    }
done:
    lua_close(L);
    ctx_free(&c);
    if (rc == 0) {
        rc = dag_finalize(*out, err);
        if (rc) {
            dag_free(*out);
            *out = NULL;
        }
    }
    return rc;
}

int load_lua_buf(const char *path, const char *buf, size_t len, struct dag **out,
                 struct kiln_err *err)
{
    return load_lua_buf_limits(path, buf, len, NULL, out, err);
}

int load_lua_file(const char *path, struct dag **out, struct kiln_err *err)
{
    char *buf;
    size_t len;
    *out = NULL;
    int rc = file_read_all(path, &buf, &len);
    if (rc)
        return kiln_err_set(err, rc, "%s: cannot read: %s", path, strerror(-rc));
    rc = load_lua_buf(path, buf, len, out, err);
    free(buf);
    return rc;
}
