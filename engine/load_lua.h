/* load_lua: Lua 5.4 DAG file -> struct dag, in a sandbox.
 *
 * A Lua DAG file builds the same model as a YAML file with code:
 *     local d = dag{ id = "sweep", default = { retries = 1 } }
 *     local prep = d:task{ id = "prep", command = {"kiln-clean"} }
 *     for _, lr in ipairs{0.01, 0.1} do
 *       d:task{ id = "train_" .. lr, deps = {prep},
 *               command = {"kiln-train", "--lr", lr} }
 *     end
 * (docs/dag-lua.md has the whole API).  Task keys, their types and their
 * checks are those of the YAML loader.
 *
 * Each file runs in a fresh lua_State with only base (without dofile,
 * loadfile, collectgarbage, and with load limited to text chunks), string
 * (without dump, and with patterns that cannot backtrack), table (on plain
 * tables), math, utf8 and os.time/date/clock, and under three limits: an
 * instruction budget, a memory cap (the Lua heap plus the DAG being built)
 * and a CPU-time cap, none of which pcall can catch.
 *
 * Every error is "FILE:LINE: message" (Lua knows lines, not columns), or
 * "FILE: message" where no line applies, for example
 *   dags/sweep.lua:12: task 'x': unknown key 'retires' (did you mean 'retries'?)
 *   dags/sweep.lua: stopped after 10000000 instructions
 *   dags/sweep.lua: stopped: memory limit of 64 MiB exceeded
 * The returned DAG is finalized (dag_finalize() has run). */
#ifndef KILN_LOAD_LUA_H
#define KILN_LOAD_LUA_H

#include <stddef.h>
#include <stdint.h>

#include "dag.h"

#define LOAD_LUA_INSTRUCTIONS 10000000ULL
#define LOAD_LUA_MEMORY ((size_t)64 << 20)
#define LOAD_LUA_CPU_MS 2000

struct load_lua_limits {
    /* VM instructions, plus what the wrapped string and table functions
     * are charged for the work they do in C (>= 1; docs/dag-lua.md) */
    uint64_t instructions;
    size_t memory;   /* bytes: Lua's heap plus the DAG model built so far */
    int64_t cpu_ms;  /* CPU time of the loading thread; 0: no limit */
};

/* LOAD_LUA_INSTRUCTIONS, LOAD_LUA_MEMORY, LOAD_LUA_CPU_MS. */
extern const struct load_lua_limits load_lua_default_limits;

int load_lua_file(const char *path, struct dag **out, struct kiln_err *err);
/* path is used for messages and as dag->path. */
int load_lua_buf(const char *path, const char *buf, size_t len, struct dag **out,
                 struct kiln_err *err);
int load_lua_buf_limits(const char *path, const char *buf, size_t len,
                        const struct load_lua_limits *limits, struct dag **out,
                        struct kiln_err *err);

#endif
