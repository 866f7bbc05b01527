#!/bin/sh
# ML steps against their baselines, paired in one run (A B A B ...):
#   clean: kiln-clean vs pandas on ROWS x 20 (18 numbers with 5% missing, an
#          integer column, a category column with 60 values; 2% duplicate rows):
#          dedup, impute mean (most frequent for the category), z-score clip
#          (K=3), standardize, one-hot top-10 + __other__, write CSV (%.17g).
#   train: kiln-train (L-BFGS, CPU) + kiln-eval vs StandardScaler +
#          LogisticRegression(lbfgs) on ROWS x 32 (first 80% train, last 20% test;
#          the same files for both); both accuracies are printed and must agree
#          within 0.01.  An extra line (not the comparison) times kiln-train +
#          kiln-eval on the same rows as kcol files, converted beforehand.
# Both kiln programs run with --device cpu (a CUDA build would take a visible
# GPU otherwise: bench/bench_gpu.sh measures that).
# Timed: whole processes, from start to exit, CSV reading (and for clean, CSV
# writing) included on both sides; python's start and imports are inside the
# pandas/sklearn times (about 1 s: printed as "py-start").  The data is
# generated once, outside the timings, by bench/gen_ml_data.c (seeded).
# Usage: bench/bench_ml.sh [BUILD_DIR] [ROWS] [PAIRS]
set -eu
build=${1:-build}
rows=${2:-1000000}
pairs=${3:-2}
src=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
d=$(mktemp -d /tmp/kiln-bench-ml.XXXXXX)
trap 'rm -rf "$d"' EXIT
cc -O2 -o "$d/gen" "$src/bench/gen_ml_data.c" -lm
"$d/gen" clean "$rows" 1 > "$d/clean.csv"
"$d/gen" train "$rows" 2 > "$d/all.csv"
ntest=$((rows / 5))
head -n $((rows - ntest + 1)) "$d/all.csv" > "$d/train.csv"
{ head -n 1 "$d/all.csv"; tail -n "$ntest" "$d/all.csv"; } > "$d/test.csv"
rm -f "$d/all.csv"
# the same train/test rows as kcol, for the extra (not headline) kcol line
"$build/tasks/clean/kiln-clean" "$d/train.csv" -o "$d/train.kcol" --device cpu > /dev/null 2>&1
"$build/tasks/clean/kiln-clean" "$d/test.csv" -o "$d/test.kcol" --device cpu > /dev/null 2>&1

cat > "$d/clean.py" <<'PYEOF'
import sys, pandas as pd
df = pd.read_csv(sys.argv[1])
df = df.drop_duplicates()
num = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
cat = [c for c in df.columns if c not in num]
df[num] = df[num].fillna(df[num].mean())
for c in cat:
    df[c] = df[c].fillna(df[c].mode().iloc[0])
x = df[num].astype(float)
m, s = x.mean(), x.std()
x = x.clip(m - 3 * s, m + 3 * s, axis=1)
df[num] = (x - x.mean()) / x.std()
out = {}
for c in df.columns:
    if c not in cat:
        out[c] = df[c]
        continue
    vc = df[c].value_counts()
    vc = sorted(vc.items(), key=lambda kv: (-kv[1], kv[0]))
    top = [v for v, _ in vc[:10]]
    for v in top:
        out["%s=%s" % (c, v)] = (df[c] == v).astype(int)
    if len(vc) > 10:
        out[c + "=__other__"] = (~df[c].isin(top)).astype(int)
pd.DataFrame(out).to_csv(sys.argv[2], index=False, float_format="%.17g")
PYEOF
cat > "$d/train.py" <<'PYEOF'
import sys, pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
tr, te = pd.read_csv(sys.argv[1]), pd.read_csv(sys.argv[2])
m = make_pipeline(StandardScaler(), LogisticRegression(solver="lbfgs", max_iter=10000))
m.fit(tr.iloc[:, :-1].to_numpy(), tr.iloc[:, -1].to_numpy())
print("%.6f" % m.score(te.iloc[:, :-1].to_numpy(), te.iloc[:, -1].to_numpy()))
PYEOF

now() { date +%s.%N; }
t0=$(now); $PY -c 'import pandas, sklearn.linear_model'; pystart=$(echo "$(now) - $t0" | bc)
echo "machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); rows=$rows; py-start=${pystart}s"
CLEAN=$build/tasks/clean/kiln-clean TRAIN=$build/tasks/train/kiln-train EVAL=$build/tasks/train/kiln-eval
i=1
while [ "$i" -le "$pairs" ]; do
    t0=$(now)
    "$CLEAN" "$d/clean.csv" -o "$d/k.csv" --device cpu --dedup --impute mean --clip zscore:3 --scale standard --onehot 10 > /dev/null 2>&1
    t1=$(now)
    $PY "$d/clean.py" "$d/clean.csv" "$d/p.csv"
    t2=$(now)
    kc=$(echo "$t1 - $t0" | bc); pc=$(echo "$t2 - $t1" | bc)
    echo "pair $i clean: kiln-clean ${kc}s pandas ${pc}s ratio(pandas/kiln) $(echo "scale=2; $pc / $kc" | bc)"
    t0=$(now)
    "$TRAIN" --data "$d/train.csv" --out "$d/model.json" --device cpu --quiet > /dev/null
    KILN_OUTPUTS="$d/eval.json" "$EVAL" --model "$d/model.json" --data "$d/test.csv" > /dev/null
    t1=$(now)
    sacc=$($PY "$d/train.py" "$d/train.csv" "$d/test.csv")
    t2=$(now)
    kacc=$($PY -c 'import json,sys; print("%.6f" % json.load(open(sys.argv[1]))["accuracy"])' "$d/eval.json")
    kt=$(echo "$t1 - $t0" | bc); st=$(echo "$t2 - $t1" | bc)
    agree=$(awk -v a="$kacc" -v b="$sacc" 'BEGIN { d = a - b; if (d < 0) d = -d; print (d <= 0.01 ? "agree" : "DISAGREE") }')
    echo "pair $i train: kiln-train+eval ${kt}s (accuracy $kacc) sklearn ${st}s (accuracy $sacc; $agree) ratio(sklearn/kiln) $(echo "scale=2; $st / $kt" | bc)"
    t0=$(now)
    "$TRAIN" --data "$d/train.kcol" --out "$d/model.kcol.json" --device cpu --quiet > /dev/null
    KILN_OUTPUTS="$d/eval.kcol.json" "$EVAL" --model "$d/model.kcol.json" --data "$d/test.kcol" > /dev/null
    t1=$(now)
    kacc2=$($PY -c 'import json,sys; print("%.6f" % json.load(open(sys.argv[1]))["accuracy"])' "$d/eval.kcol.json")
    kt2=$(echo "$t1 - $t0" | bc)
    echo "pair $i train (extra, not the comparison): kiln-train+eval reading kcol ${kt2}s (accuracy $kacc2; files converted by kiln-clean beforehand, untimed)"
    i=$((i + 1))
done
