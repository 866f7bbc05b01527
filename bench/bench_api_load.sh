#!/bin/sh
# bench/bench_api_load.sh: does hammering the read API slow the scheduler?
#
#   sh bench/bench_api_load.sh            (needs wrk: apt-get install -y wrk)
#
# A layered DAG of LAYERS x WIDTH tasks (default 100 x 100 = 10,000, every
# task `true`) runs with the local executor at parallelism 2 under
# `kiln serve`, twice per round: once alone, once while wrk hammers read
# endpoints (GET /api/v1/dags, the DAG's grid, its latest run) with CONNS
# connections (default 50) for the whole run.  Each measurement gets a fresh
# home and daemon; the order alternates per round, so drift hits both alike.
# The run's wall is the database's end_us - created_us (trigger committed to
# run finished).  Reported: both walls, the paired throughput drop (target
# < 20 %), wrk's requests/s and latency, and its errors (socket errors and
# non-2xx answers; target zero), and how the daemon answered the reads
# (kiln_api_reads_total: computed on a reader thread, kept, not_modified).
# Loopback only; wrk stops when the run ends
# or after MAX_S seconds (default 120): a loaded wall >= MAX_S means the
# load starved the run until wrk stopped (the run then ends unloaded).
#
# Environment: KILN_BIN (default ./kiln next to bench/), LAYERS, WIDTH,
# ROUNDS (default 2), CONNS, THREADS (wrk threads, default 2), MAX_S,
# KEEP=1 (keep the work folder).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
KILN_BIN=${KILN_BIN:-$here/../kiln}
LAYERS=${LAYERS:-100} WIDTH=${WIDTH:-100} ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-50} THREADS=${THREADS:-2} MAX_S=${MAX_S:-120}
PAR=2
unset KILN_CONFIG KILN_HOME KILN_DAGS KILN_EXECUTOR KILN_PARALLELISM KILN_LOG_LEVEL \
      KILN_BIND KILN_PORT KILN_API_TOKEN || true

die() { echo "bench_api_load: $*" >&2; exit 1; }
for t in curl python3 sqlite3; do
    command -v "$t" >/dev/null 2>&1 || die "needs $t"
done
command -v wrk >/dev/null 2>&1 || die "needs wrk (apt-get install -y wrk)"
[ -x "$KILN_BIN" ] || die "no kiln binary at $KILN_BIN (build it: make)"

WORK=$(mktemp -d /tmp/kiln-bench-load.XXXXXX)
PID= WRK=
stop_daemon() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    PID=
}
cleanup() {
    if [ -n "$WRK" ]; then kill "$WRK" 2>/dev/null || true; wait "$WRK" 2>/dev/null || true; fi
    stop_daemon
    [ "${KEEP:-0}" = 1 ] && echo "work folder kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/dags"
python3 "$here/gen_dags.py" layered "${LAYERS}x$WIDTH" "$WORK/gen" > /dev/null
sed 's/^dag: .*/dag: load/' "$WORK/gen/dag.yaml" > "$WORK/dags/load.yaml"
TASKS=$((LAYERS * WIDTH))
cat > "$WORK/paths.lua" <<'EOF'
-- Rotates over the read endpoints, one per request.
local paths = { "/api/v1/dags", "/api/v1/dags/load/grid?runs=25",
                "/api/v1/dags/load/runs/latest" }
local i = 0
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
EOF

# measure LABEL ROUND: one run on a fresh home; with LABEL=load, wrk runs
# from just after the trigger until the run has ended.
measure() {
    home="$WORK/home.$1.$2"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    base="http://127.0.0.1:$port"
    "$KILN_BIN" serve --home "$home" --dags "$WORK/dags" --parallelism $PAR --port "$port" \
        > "$WORK/serve.$1.$2.log" 2>&1 &
    PID=$!
    i=0
    until curl -sf "$base/api/v1/dags/load" > /dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 600 ] || die "the daemon did not come up ($WORK/serve.$1.$2.log)"
        sleep 0.1
    done
    curl -sf -o /dev/null -X POST -H "Authorization: Bearer $(cat "$home/token")" \
        -d '{"run_id": "bench"}' "$base/api/v1/dags/load/runs" || die "trigger failed"
    if [ "$1" = load ]; then
        wrk -t"$THREADS" -c"$CONNS" -d"${MAX_S}s" --latency -s "$WORK/paths.lua" "$base" \
            > "$WORK/wrk.$2.out" 2>&1 &
        WRK=$!
    fi
    q="SELECT count(*) FROM runs WHERE run_id = 'bench' AND state IN ('success', 'failed')"
    s=0
    until [ "$(sqlite3 "$home/kiln.db" "$q" 2>/dev/null || echo 0)" = 1 ]; do
        kill -0 "$PID" 2>/dev/null || die "the daemon died ($WORK/serve.$1.$2.log)"
        s=$((s + 1)); [ $s -lt $((MAX_S * 20)) ] || die "the run did not end within $MAX_S s"
        sleep 0.2
    done
    if [ -n "$WRK" ]; then
        kill -INT "$WRK" 2>/dev/null || true   # wrk prints its summary on SIGINT
        wait "$WRK" 2>/dev/null || true
        WRK=
        # How the reads were answered: computed on a reader thread, or kept.
        curl -s "$base/metrics" | awk -F'[{}" ]+' '$1 == "kiln_api_reads_total" { printf "%s %s ", $3, $4 }' \
            > "$WORK/reads.$2" 2>/dev/null || true
    fi
    set -- "$1" "$2" $(sqlite3 -separator ' ' "$home/kiln.db" \
        "SELECT (end_us - created_us) / 1e6, state FROM runs WHERE run_id = 'bench';
         SELECT count(*) FROM task_instances WHERE state = 'success'")
    [ "$4" = success ] && [ "$5" = "$TASKS" ] || die "run $1.$2 ended $4 with $5 of $TASKS in success"
    echo "$1 $2 $3" >> "$WORK/times"
    stop_daemon
}

echo "kiln API load benchmark: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "$TASKS tasks (layered ${LAYERS}x$WIDTH), parallelism $PAR, wrk -t$THREADS -c$CONNS, $ROUNDS round(s)"
: > "$WORK/times"
r=1
while [ $r -le "$ROUNDS" ]; do
    if [ $((r % 2)) = 1 ]; then measure quiet $r; measure load $r
    else measure load $r; measure quiet $r; fi
    printf '  round %d: quiet %.2f s, under load %.2f s\n' $r \
        "$(awk -v r=$r '$1 == "quiet" && $2 == r { print $3 }' "$WORK/times")" \
        "$(awk -v r=$r '$1 == "load" && $2 == r { print $3 }' "$WORK/times")"
    r=$((r + 1))
done

med() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
quiet=$(awk '$1 == "quiet" { print $3 }' "$WORK/times" | med)
load=$(awk '$1 == "load" { print $3 }' "$WORK/times" | med)
drop=$(awk '{ q[$2] += ($1 == "quiet") * $3; l[$2] += ($1 == "load") * $3 }
            END { for (r in q) print (1 - q[r] / l[r]) * 100 }' "$WORK/times" | med)
echo
printf 'run wall, median: quiet %.2f s (%.0f tasks/s), under load %.2f s (%.0f tasks/s)\n' \
    "$quiet" "$(echo "$TASKS $quiet" | awk '{ print $1 / $2 }')" \
    "$load" "$(echo "$TASKS $load" | awk '{ print $1 / $2 }')"
awk -v m="$MAX_S" '$1 == "load" && $3 >= m { f = 1 } END { exit !f }' "$WORK/times" &&
    echo "note: a loaded run outlasted wrk's $MAX_S s: its wall is a lower bound of the starvation"
printf 'throughput drop under load (median of per-round pairs): %.1f %%   (target: < 20 %%)\n' "$drop"
reqs=0 errs=0 non2xx=0
for f in "$WORK"/wrk.*.out; do
    n=$(awk '/requests in/ { print $1 }' "$f")
    e=$(awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$f")
    x=$(awk '/Non-2xx/ { print $NF }' "$f")
    reqs=$((reqs + ${n:-0})) errs=$((errs + ${e:-0})) non2xx=$((non2xx + ${x:-0}))
    r=${f##*/wrk.}; r=${r%.out}
    printf '  wrk %s: %s requests, %s req/s, latency p50 %s, p99 %s; reads: %s\n' "${f##*/}" "${n:-?}" \
        "$(awk '/Requests\/sec/ { print $2 }' "$f")" "$(awk '$1 == "50%" { print $2 }' "$f")" \
        "$(awk '$1 == "99%" { print $2 }' "$f")" "$(cat "$WORK/reads.$r" 2>/dev/null || echo ?)"
done
printf 'wrk: %d requests in all, %d socket errors, %d non-2xx answers   (target: 0 errors)\n' \
    "$reqs" "$errs" "$non2xx"
