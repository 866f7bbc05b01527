#!/bin/sh
# kiln-clean vs pandas on a seeded ROWS x 20 CSV (default 1,000,000 rows):
# read, impute mean, z-score clip, standardize, write CSV.  Prints both times
# and the ratio.  Usage: bench/bench_clean.sh [BUILD_DIR] [ROWS]
set -eu
build=${1:-build}
rows=${2:-1000000}
PY=/usr/bin/python3
d=$(mktemp -d /tmp/kiln-bench-clean.XXXXXX)
trap 'rm -rf "$d"' EXIT
$PY - "$d/in.csv" "$rows" <<'PYEOF'
import sys, numpy as np
rng = np.random.default_rng(1)
n = int(sys.argv[2])
x = rng.normal(50, 10, size=(n, 20))
x[rng.random((n, 20)) < 0.05] = np.nan
with open(sys.argv[1], "w") as f:
    f.write(",".join("c%d" % i for i in range(20)) + "\n")
    np.savetxt(f, x, fmt="%.6f", delimiter=",")
PYEOF
t0=$(date +%s.%N)
"$build/tasks/clean/kiln-clean" "$d/in.csv" -o "$d/out.csv" --impute mean --clip zscore:3 --scale standard > /dev/null 2>&1
t1=$(date +%s.%N)
$PY - "$d/in.csv" "$d/pd.csv" <<'PYEOF'
import sys, pandas as pd
df = pd.read_csv(sys.argv[1])
df = df.fillna(df.mean())
m, s = df.mean(), df.std()
df = df.clip(m - 3 * s, m + 3 * s, axis=1)
df = (df - df.mean()) / df.std()
df.to_csv(sys.argv[2], index=False, float_format="%.17g")
PYEOF
t2=$(date +%s.%N)
echo "rows=$rows kiln-clean=$(echo "$t1 - $t0" | bc)s pandas=$(echo "$t2 - $t1" | bc)s ratio(pandas/kiln)=$(echo "scale=2; ($t2 - $t1) / ($t1 - $t0)" | bc)"
