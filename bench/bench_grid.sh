#!/bin/sh
# bench/bench_grid.sh: how fast the UI's grid answers on a big DAG.
#
#   sh bench/bench_grid.sh
#
# A layered DAG of LAYERS x WIDTH tasks (default 50 x 100 = 5,000) gets RUNS
# runs (default 25) with the noop executor (`kiln serve --executor noop`: no
# processes, every transition persisted), so the database holds
# RUNS x 5,000 task instances.  Then GET /api/v1/dags/DAG/grid?runs=RUNS is
# asked N times (default 50), one curl each, and the time to the first byte
# (curl's time_starttransfer: on loopback, about the server's time) is
# reported as median, p95 and max, against the target of 50 ms, with the
# response size.  Reads are kept per database generation (webui/reads.c), so
# this is asked twice: "computed", each request with a query parameter of its
# own (ignored by the endpoint, but a new cache key: every answer is read and
# built on a reader thread), and "kept", the same URL each time (answered
# from the kept answer).  Loopback only.  Needs curl, python3, sqlite3.
#
# Environment: KILN_BIN (default ./kiln next to bench/), LAYERS, WIDTH, RUNS,
# N, KEEP=1 (keep the work folder).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
KILN_BIN=${KILN_BIN:-$here/../kiln}
LAYERS=${LAYERS:-50} WIDTH=${WIDTH:-100} RUNS=${RUNS:-25} N=${N:-50}
unset KILN_CONFIG KILN_HOME KILN_DAGS KILN_EXECUTOR KILN_PARALLELISM KILN_LOG_LEVEL \
      KILN_BIND KILN_PORT KILN_API_TOKEN || true

die() { echo "bench_grid: $*" >&2; exit 1; }
for t in curl python3 sqlite3; do
    command -v "$t" >/dev/null 2>&1 || die "needs $t"
done
[ -x "$KILN_BIN" ] || die "no kiln binary at $KILN_BIN (build it: make)"

WORK=$(mktemp -d /tmp/kiln-bench-grid.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    [ "${KEEP:-0}" = 1 ] && echo "work folder kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/dags"
python3 "$here/gen_dags.py" layered "${LAYERS}x$WIDTH" "$WORK/gen" > /dev/null
sed 's/^dag: .*/dag: grid/' "$WORK/gen/dag.yaml" > "$WORK/dags/grid.yaml"
TASKS=$((LAYERS * WIDTH))
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

"$KILN_BIN" serve --home "$WORK/home" --dags "$WORK/dags" --executor noop --port "$PORT" \
    > "$WORK/serve.log" 2>&1 &
PID=$!
i=0
until curl -sf "$BASE/api/v1/dags/grid" > /dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 300 ] || { tail "$WORK/serve.log" >&2; die "the daemon did not come up"; }
    sleep 0.1
done
TOKEN=$(cat "$WORK/home/token")

echo "kiln grid benchmark: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s.%N)
r=1
while [ $r -le "$RUNS" ]; do
    curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -d "{\"run_id\": \"r$r\"}" \
        "$BASE/api/v1/dags/grid/runs" || die "trigger $r failed"
    r=$((r + 1))
done
q="SELECT count(*) FROM runs WHERE state IN ('success', 'failed')"
until [ "$(sqlite3 "$WORK/home/kiln.db" "$q" 2>/dev/null || echo 0)" -ge "$RUNS" ]; do
    kill -0 "$PID" 2>/dev/null || die "the daemon died"
    sleep 0.5
done
t1=$(date +%s.%N)
ok=$(sqlite3 "$WORK/home/kiln.db" "SELECT count(*) FROM task_instances WHERE state = 'success'")
printf '%d runs of %d tasks done in %.1f s (noop executor), %d task instances in success\n' \
    "$RUNS" "$TASKS" "$(echo "$t1 $t0" | awk '{ print $1 - $2 }')" "$ok"

URL="$BASE/api/v1/dags/grid/grid?runs=$RUNS"
curl -sf -o "$WORK/grid.json" "$URL" || die "GET grid failed"
python3 - "$WORK/grid.json" "$RUNS" "$TASKS" <<'EOF' || die "the grid answer is wrong"
import json, sys
g = json.load(open(sys.argv[1]))
assert len(g["runs"]) == int(sys.argv[2]), len(g["runs"])
assert len(g["tasks"]) == int(sys.argv[3]), len(g["tasks"])
assert all(len(r["cells"]) == len(g["tasks"]) for r in g["runs"])
EOF
# ask SUFFIX-MODE: N requests; MODE "fresh" adds a new parameter to each.
ask() {
    : > "$WORK/t"
    i=0
    while [ $i -lt "$N" ]; do
        u=$URL
        [ "$1" = fresh ] && u="$URL&nocache=$i"
        curl -sf -o /dev/null -w '%{time_starttransfer} %{time_total} %{size_download}\n' "$u" \
            >> "$WORK/t" || die "GET grid failed"
        i=$((i + 1))
    done
}
# pct COLUMN P: the P-quantile (nearest rank) of a column, in ms.
pct() { cut -d' ' -f"$1" "$WORK/t" | sort -g | awk -v p="$2" '{ v[NR] = $1 } END {
    i = int(p * NR + 0.999); if (i < 1) i = 1; if (i > NR) i = NR; printf "%.1f", v[i] * 1000 }'; }
printf 'GET /api/v1/dags/grid/grid?runs=%d (%d tasks x %d runs), %d requests, one connection each:\n' \
    "$RUNS" "$TASKS" "$RUNS" "$N"
for mode in fresh kept; do
    ask $mode
    [ $mode = fresh ] && label="computed" || label="kept    "
    printf '  %s time to first byte: median %s ms, p95 %s ms, max %s ms   (target: < 50 ms)\n' \
        "$label" "$(pct 1 0.5)" "$(pct 1 0.95)" "$(pct 1 1)"
    printf '  %s total with body:    median %s ms, p95 %s ms\n' "$label" "$(pct 2 0.5)" "$(pct 2 0.95)"
done
size=$(head -n 1 "$WORK/t" | cut -d' ' -f3)
printf '  response: %d bytes (%.1f KiB)\n' "$size" "$(echo "$size" | awk '{ print $1 / 1024 }')"
