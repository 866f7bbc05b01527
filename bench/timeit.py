#!/usr/bin/env python3
"""Times one command, with every process it leaves behind.

    timeit.py OUT -- COMMAND [ARG ...]

Becomes a child subreaper, runs COMMAND, and takes the wall time from just
before the start to its exit.  Then every process that was orphaned under
it (kiln's task shepherd, which leaves its starter and would otherwise idle
for some seconds) gets SIGTERM (SIGKILL after 5 s) and is reaped, so that
nothing outlives the measurement and the CPU of those processes, and of the
tasks they reaped, is counted.  Appends one line to OUT:

    WALL_S USER_S SYS_S MAX_RSS_KIB EXIT_STATUS

MAX_RSS_KIB is the peak RSS of the largest single process.  The command's
own stdout and stderr pass through.  Exits with the command's status.
"""

import ctypes
import os
import resource
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def children():
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: ppid follows the last ')'.
        if int(st[st.rindex(")") + 2:].split()[1]) == me:
            out.append(int(d))
    return out


def reap_all():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write(__doc__)
        return 2
    out, cmd = argv[1], argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write("timeit.py: cannot become a child subreaper\n")
        return 2
    t0 = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ)
    _, status = os.waitpid(pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)

    deadline = time.monotonic() + 5
    sig = signal.SIGTERM
    while not reap_all():
        for c in children():
            try:
                os.kill(c, sig)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        time.sleep(0.01)

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "a") as f:
        f.write("%.6f %.3f %.3f %d %d\n" % (wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss, rc))
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
