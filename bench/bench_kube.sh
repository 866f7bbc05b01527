#!/bin/sh
# bench/bench_kube.sh [KILN_BIN]: the Kubernetes executor through kube-sim,
# against a minimal Python controller on the same sim in the same run
# (bench/kube_bench.py says what is measured).  Env: TASKS (1000), CHAINS (4),
# QPS (kiln's pod-creation limit for the run, 1000).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
exec "$PY" "$here/kube_bench.py" "${1:-$here/../kiln}"
