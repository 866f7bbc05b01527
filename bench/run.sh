#!/bin/sh
# bench/run.sh: kiln against GNU make -j2 and the process-spawn floor, all in
# the same run, on the same DAGs.  See docs/benchmarks.md for the method.
#
#   sh bench/run.sh                 # default run, about 1.5 minutes on 2 cores
#   QUICK=1 sh bench/run.sh         # smoke run, about 10 s
#
# Environment:
#   KILN_BIN     the kiln binary (default ./kiln next to bench/)
#   NOOP_BENCH   the no-op scheduler benchmark (default bench/noop_bench)
#   RUNS         paired rounds per shape (default 3; 1 with QUICK=1)
#   CHAIN, FAN, LAYERS, WIDTH   sizes (default 1000, 1000 (+2), 100 x 100)
#   KEEP=1       keep the work folder (DAGs, homes, raw times)
#   TMPFS=0      skip the extra layered kiln run with its home on /dev/shm
#
# Each round runs every measurement once, alternating which of make and kiln
# goes first, so slow drift of the machine hits both alike; ratios are taken
# per round (paired) and their median is reported.  Every kiln run gets a
# fresh home: a new database, log folder and task shepherd.  Homes are
# removed only at the end: on ext4 without a journal, inodes freed in the
# last minutes are skipped one by one when a file is created, so deleting
# thousands of files between runs would slow the next run's log files.
# Exits non-zero if any run fails.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
KILN_BIN=${KILN_BIN:-$here/../kiln}
NOOP_BENCH=${NOOP_BENCH:-$here/noop_bench}
QUICK=${QUICK:-0}
PAR=2

if [ "$QUICK" = 1 ]; then
    RUNS=${RUNS:-1}
    CHAIN=200 FAN=200 LAYERS=20 WIDTH=50 FLOOR_N=2000 FLOOR1_N=500 NOOP_CHAIN=2000
else
    RUNS=${RUNS:-3}
    CHAIN=${CHAIN:-1000} FAN=${FAN:-1000} LAYERS=${LAYERS:-100} WIDTH=${WIDTH:-100}
    FLOOR_N=10000 FLOOR1_N=2000 NOOP_CHAIN=10000
fi

# Nothing from the caller may change what is measured: a make jobserver
# inherited from `make -j bench`, or kiln settings from the environment.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS || true
unset KILN_CONFIG KILN_HOME KILN_DAGS KILN_EXECUTOR KILN_PARALLELISM KILN_LOG_LEVEL \
      KILN_KILL_GRACE KILN_BIND KILN_PORT || true

die() { echo "bench: $*" >&2; exit 1; }
for t in python3 make sqlite3 "${CC:-cc}"; do
    command -v "$t" >/dev/null 2>&1 || die "needs $t (sqlite3: apt-get install -y sqlite3)"
done
[ -x "$KILN_BIN" ] || die "no kiln binary at $KILN_BIN (build it: make)"
[ -x "$NOOP_BENCH" ] || die "no $NOOP_BENCH (build it: make bench/noop_bench)"
KILN_BIN=$(cd "$(dirname "$KILN_BIN")" && pwd)/$(basename "$KILN_BIN")

WORK=$(mktemp -d /tmp/kiln-bench.XXXXXX)
SHM=
if [ "${TMPFS:-1}" = 1 ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
    SHM=$(mktemp -d /dev/shm/kiln-bench.XXXXXX)
fi
cleanup() {
    [ -z "$SHM" ] || rm -rf "$SHM"
    [ "${KEEP:-0}" = 1 ] && echo "work folder kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"

"${CC:-cc}" -O2 -o "$WORK/spawn_floor" "$here/spawn_floor.c" || die "cannot build spawn_floor"
TIMES="$WORK/times"           # round shape tool tasks wall user sys rss_kib
: > "$TIMES"

python3 "$here/gen_dags.py" chain "$CHAIN" "$WORK/chain" > /dev/null
python3 "$here/gen_dags.py" fan "$FAN" "$WORK/fan" > /dev/null
python3 "$here/gen_dags.py" layered "${LAYERS}x$WIDTH" "$WORK/layered" > /dev/null
python3 "$here/gen_dags.py" chain "$NOOP_CHAIN" "$WORK/noopchain" > /dev/null
n_of() { grep -c '^  [^ ]*: {' "$WORK/$1/dag.yaml"; }

# measure ROUND SHAPE TOOL TASKS DIR COMMAND...: one timed run in DIR.
measure() {
    m_round=$1 m_shape=$2 m_tool=$3 m_n=$4 m_dir=$5
    shift 5
    m_out="$WORK/out.$m_shape.$m_tool.$m_round"
    : > "$WORK/t"
    if ! (cd "$m_dir" && python3 "$here/timeit.py" "$WORK/t" -- "$@") > "$m_out" 2>&1; then
        echo "bench: FAILED ($m_tool $m_shape, round $m_round): $*" >&2
        tail -n 20 "$m_out" >&2
        exit 1
    fi
    read -r wall user sys rss rc < "$WORK/t"
    echo "$m_round $m_shape $m_tool $m_n $wall $user $sys $rss" >> "$TIMES"
}

run_make() { measure "$1" "$2" make "$(n_of "$2")" "$WORK/$2" make -j$PAR -f Makefile.gen all; }
# run_kiln ROUND SHAPE [HOMES_ROOT [LABEL]]
run_kiln() {
    measure "$1" "${4:-$2}" kiln "$(n_of "$2")" "$WORK" "$KILN_BIN" dags test \
        "$WORK/$2/dag.yaml" --home "${3:-$WORK}/home.${4:-$2}.$1" --parallelism $PAR -q
}

echo "kiln benchmark: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
     "load $(cut -d' ' -f1-3 /proc/loadavg), $RUNS round(s)$( [ "$QUICK" = 1 ] && echo ', QUICK')"
echo "homes on $(stat -f -c %T "$WORK") ($WORK)${SHM:+, and for one extra layered run on tmpfs ($SHM)}"
if [ "$QUICK" != 1 ]; then
    # Warm-up, not recorded: page cache, binaries, dynamic loader.
    measure 0 fan make "$(n_of fan)" "$WORK/fan" make -j$PAR -f Makefile.gen all
    run_kiln 0 fan
    : > "$TIMES"
fi

r=1
while [ "$r" -le "$RUNS" ]; do
    for shape in chain fan layered; do
        if [ $((r % 2)) = 1 ]; then
            run_make $r $shape; run_kiln $r $shape
        else
            run_kiln $r $shape; run_make $r $shape
        fi
    done
    [ -z "$SHM" ] || run_kiln $r layered "$SHM" layered_tmpfs
    measure $r floor2 floor "$FLOOR_N" "$WORK" "$WORK/spawn_floor" "$FLOOR_N" 2
    measure $r floor1 floor "$FLOOR1_N" "$WORK" "$WORK/spawn_floor" "$FLOOR1_N" 1
    printf '  round %d of %d done\n' "$r" "$RUNS"
    r=$((r + 1))
done

# ---- report --------------------------------------------------------------

# Median (and min-max) of the numbers on stdin.
stats() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan nan nan"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        print m, v[1], v[NR] }'
}
# CPU ms per task (user + sys of every process of the run, tasks included).
cpu() { awk -v s="$1" -v t="$2" '$2 == s && $3 == t { print ($6 + $7) * 1000 / $4 }' "$TIMES"; }
col() { awk -v s="$1" -v t="$2" -v c="$3" '$2 == s && $3 == t { print $c }' "$TIMES"; }
# Per-round ratio of two measurements, each as wall per task.
paired() {
    awk -v s1="$1" -v t1="$2" -v s2="$3" -v t2="$4" '
        $2 == s1 && $3 == t1 { a[$1] = $5 / $4 }
        $2 == s2 && $3 == t2 { b[$1] = $5 / $4 }
        END { for (r in a) if (r in b) print a[r] / b[r] }' "$TIMES" | stats
}

echo
echo "Wall time, median of $RUNS (min-max); ratios are medians of per-round (paired) ratios."
echo "x floor: wall per task over the posix_spawn floor's (2 in flight; chain: 1 in flight)."
printf '%-13s %6s  %-22s %-22s %8s %8s  %-18s %7s %7s %8s %8s %8s\n' shape N "make -j$PAR s" \
    "kiln s" "make t/s" "kiln t/s" "kiln/make" "make xF" "kiln xF" "make CPU" "kiln CPU" \
    "kiln RSS"
printf '%-13s %6s  %-22s %-22s %8s %8s  %-18s %7s %7s %8s %8s %8s\n' "" "" "" "" "" "" "" "" "" \
    "ms/task" "ms/task" "MiB"
# Rows: kiln's shape label, the DAG (and make's row), the floor to compare with.
for row in "chain chain floor1" "fan fan floor2" "layered layered floor2" \
           "layered_tmpfs layered floor2"; do
    set -- $row
    label=$1 shape=$2 floor=$3
    grep -q " $label kiln " "$TIMES" || continue
    n=$(n_of $shape)
    set -- $(col $shape make 5 | stats) $(col $label kiln 5 | stats) \
           $(paired $label kiln $shape make) $(paired $shape make $floor floor) \
           $(paired $label kiln $floor floor) \
           $(cpu $shape make | stats) $(cpu $label kiln | stats) \
           $(awk -v s=$label '$2 == s && $3 == "kiln" { print $8 / 1024 }' "$TIMES" | stats)
    printf '%-13s %6d  %-22s %-22s %8.0f %8.0f  %-18s %7.2f %7.2f %8.3f %8.3f %8.1f\n' $label \
        "$n" "$(printf '%.3f (%.3f-%.3f)' $1 $2 $3)" "$(printf '%.3f (%.3f-%.3f)' $4 $5 $6)" \
        "$(echo "$n $1" | awk '{ print $1 / $2 }')" "$(echo "$n $4" | awk '{ print $1 / $2 }')" \
        "$(printf '%.2f (%.2f-%.2f)' $7 $8 $9)" ${10} ${13} ${16} ${19} ${22}
done
echo "(layered_tmpfs: the same layered DAG, kiln's home on tmpfs; make columns from the layered row)"
for f in floor2 floor1; do
    set -- $(col $f floor 5 | stats)
    n=$(col $f floor 4 | head -n 1)
    printf 'floor: posix_spawn of /bin/true x %d, %d in flight: %.3f s (%.3f-%.3f), %.3f ms/task\n' \
        "$n" "${f#floor}" $1 $2 $3 "$(echo "$1 $n" | awk '{ print $1 * 1000 / $2 }')"
done

# Hand-off on the chain: upstream try's end (the shepherd reaped it) to the
# downstream try's start (the shepherd is about to spawn it), split at the
# downstream try's row insert (queued_us): decide | commit + spawn request.
HO="$WORK/handoff"
: > "$HO"
for db in "$WORK"/home.chain.*/kiln.db; do
    sqlite3 -separator ' ' "$db" "
        SELECT d.start_us - u.end_us, d.queued_us - u.end_us, d.start_us - d.queued_us
          FROM task_instances tu
          JOIN tries u ON u.ti_pk = tu.id
          JOIN task_instances td ON td.run_pk = tu.run_pk
               AND td.task_id = 't' || (CAST(substr(tu.task_id, 2) AS INTEGER) + 1)
          JOIN tries d ON d.ti_pk = td.id;" >> "$HO"
done
pct() { cut -d' ' -f"$1" "$HO" | sort -g | awk -v p="$2" '{ v[NR] = $1 } END {
    i = int(p * NR + 0.5); if (i < 1) i = 1; if (i > NR) i = NR; printf "%.3f", v[i] / 1000 }'; }
echo
printf 'chain hand-off (end of a task -> start of the next), %d pairs over %d run(s):\n' \
    "$(wc -l < "$HO")" "$RUNS"
printf '  total            median %s ms, p95 %s ms, max %s ms\n' "$(pct 1 0.5)" "$(pct 1 0.95)" "$(pct 1 1)"
printf '  end -> queued    median %s ms, p95 %s ms   (completion read, downstream decided, try row)\n' \
    "$(pct 2 0.5)" "$(pct 2 0.95)"
printf '  queued -> start  median %s ms, p95 %s ms   (commit, spawn request to the shepherd)\n' \
    "$(pct 3 0.5)" "$(pct 3 0.95)"
db=$(ls "$WORK"/home.chain.*/kiln.db | head -n 1)
set -- $(sqlite3 -separator ' ' "$db" "SELECT count(*), sum(state = 'success') FROM task_instances;
                                       SELECT count(*) FROM tries;")
# A task that succeeds on its first try makes 4 transitions (scheduled,
# queued, running, success) and 3 writes of its try row (insert, started,
# finished); the no-op run below counts the transitions in the scheduler.
printf '  persisted per chain run: %d task instances (%d success), %d tries:' $1 $2 $3
printf ' %d task-instance transitions, %d try-row writes\n' $(($3 * 4)) $(($3 * 3))

# No-op scheduler: the same layered DAG and a long chain, no processes.
echo
echo "no-op executor (every transition persisted; rates over the run, median of $RUNS):"
NO="$WORK/noop"
: > "$NO"
r=1
while [ "$r" -le "$RUNS" ]; do
    if ! "$NOOP_BENCH" --kiln "$KILN_BIN" "$WORK/layered/dag.yaml" "$WORK/noopchain/dag.yaml" \
            >> "$NO" 2> "$WORK/noop.err"; then
        cat "$WORK/noop.err" >&2
        die "noop_bench failed"
    fi
    r=$((r + 1))
done
for id in bench_layered bench_chain; do
    set -- $(awk -v d=$id '$2 == d { print $7 }' "$NO" | stats) \
           $(awk -v d=$id '$2 == d { print $8 }' "$NO" | stats) \
           $(awk -v d=$id '$2 == d { print $6 }' "$NO" | stats) \
           $(awk -v d=$id '$2 == d { print $5 }' "$NO" | stats)
    printf '  %-8s %6d tasks %7d transitions: %8.0f transitions/s (%.0f-%.0f), %7.0f tasks/s, run %.3f s, trigger %.3f s\n' \
        "${id#bench_}" "$(awk -v d=$id '$2 == d { print $3; exit }' "$NO")" \
        "$(awk -v d=$id '$2 == d { print $4; exit }' "$NO")" $1 $2 $3 $4 $7 ${10}
done
echo
echo "targets: layered within 1.5x of make -j$PAR; no-op >= 20,000 transitions/s; hand-off median < 1 ms"
