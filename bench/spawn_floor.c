/* spawn_floor: the cost of starting processes and nothing else.
 *
 *   spawn_floor [N [INFLIGHT [PROGRAM]]]      defaults: 10000 2 /bin/true
 *
 * Starts PROGRAM N times with posix_spawn, at most INFLIGHT at once, and
 * reaps each child with waitpid.  No pipes, no files, no state: this is the
 * floor under any local executor on this machine.  Prints
 *   floor N INFLIGHT WALL_S TASKS_PER_S
 * and exits non-zero if a child could not start or did not exit 0.
 * Built by bench/run.sh with the system compiler. */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
    long inflight = argc > 2 ? strtol(argv[2], NULL, 10) : 2;
    char *prog = argc > 3 ? argv[3] : "/bin/true";
    if (n < 1 || inflight < 1) {
        fprintf(stderr, "usage: spawn_floor [N [INFLIGHT [PROGRAM]]]\n");
        return 2;
    }
    char *child_argv[] = { prog, NULL };
    long started = 0, running = 0, failed = 0;
    double t0 = now_s();
    while (started < n || running > 0) {
        while (started < n && running < inflight) {
            pid_t pid;
            int rc = posix_spawn(&pid, prog, NULL, NULL, child_argv, environ);
            if (rc != 0) {
                fprintf(stderr, "spawn_floor: posix_spawn %s: %s\n", prog, strerror(rc));
                return 1;
            }
            started++;
            running++;
        }
        int status;
        if (waitpid(-1, &status, 0) < 0) {
            perror("spawn_floor: waitpid");
            return 1;
        }
        running--;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    double wall = now_s() - t0;
    printf("floor %ld %ld %.3f %.0f\n", n, inflight, wall, (double)n / wall);
    if (failed) {
        fprintf(stderr, "spawn_floor: %ld children failed\n", failed);
        return 1;
    }
    return 0;
}
