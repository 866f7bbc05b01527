#!/bin/sh
# The CUDA paths of kiln-train and kiln-clean against their CPU paths, within
# the stated tolerances (docs/benchmarks.md, "ML steps"):
#   kernels (tasks/gpu/kiln-gpu-check): objective loss and gradient 1e-12
#     relative, column moments 1e-12 relative, clip/standardize bit-identical;
#   kiln-train --device gpu vs cpu (L-BFGS to tol 1e-10, 200,000 x 32): every
#     weight and intercept within 1e-6 (standardized scale), train loss within
#     1e-9 relative, test accuracy within 1e-4;
#   kiln-clean --device gpu vs cpu: every number in the output within 1e-9
#     (relative above 1), everything else identical.
# Without a CUDA build or a visible GPU: "ok 1 # SKIP ...".
. "$SRCDIR/tests/lib/tap.sh"
top=$(dirname "$KILN_BIN")
TRAIN=$top/tasks/train/kiln-train EVAL=$top/tasks/train/kiln-eval CLEAN=$top/tasks/clean/kiln-clean
CHECK=$top/tasks/gpu/kiln-gpu-check
if [ ! -x "$CHECK" ]; then
    echo "ok 1 # SKIP this build has no CUDA paths (configure found no nvcc)"
    echo "1..1"
    exit 0
fi
"$CHECK" > "$T/check.tap" 2>&1
rc=$?
if grep -q '# SKIP no GPU visible' "$T/check.tap"; then
    # the programs must still fall back cleanly: auto -> cpu (logged), gpu -> usage error
    printf 'a,b,y\n1,2,0\n2,1,1\n3,3,0\n0,1,1\n' > "$T/tiny.csv"
    "$TRAIN" --data "$T/tiny.csv" --out "$T/tiny.json" 2> "$T/tiny.err"
    if [ $? -ne 0 ] || ! grep -q 'device cpu (requested auto; no GPU visible' "$T/tiny.err"; then
        echo "not ok 1 - kiln-train --device auto without a GPU: $(cat "$T/tiny.err")"; echo "1..1"; exit 1
    fi
    "$TRAIN" --data "$T/tiny.csv" --out "$T/tiny.json" --device gpu 2> "$T/tiny.err"
    if [ $? -ne 2 ] || ! grep -q -- '--device gpu: no GPU visible' "$T/tiny.err"; then
        echo "not ok 1 - kiln-train --device gpu without a GPU: $(cat "$T/tiny.err")"; echo "1..1"; exit 1
    fi
    echo "ok 1 # SKIP no GPU visible ($(sed -n 's/.*# SKIP no GPU visible (\(.*\))$/\1/p' "$T/check.tap"))"
    echo "1..1"
    exit 0
fi
sed 's/^/# /' "$T/check.tap"
[ "$rc" -eq 0 ] && ! grep -q '^not ok' "$T/check.tap"
ok $? "the CUDA kernels agree with the CPU code ($(grep -c '^ok' "$T/check.tap") checks)"

# numbers of a JSON array member (nested arrays flattened), one per line
json_nums() { # file key
    awk -v key="\"$2\"" '
        index($0, key) && !on { on = 1; depth = 0 }
        on {
            line = $0
            if (index(line, key)) line = substr(line, index(line, key) + length(key))
            o = gsub(/\[/, "[", line); c = gsub(/\]/, "]", line); depth += o - c
            n = split(line, tok, /[^-+.eE0-9]+/)
            for (i = 1; i <= n; i++) if (tok[i] ~ /^-?[0-9]/) print tok[i]
            if (depth <= 0 && (o || c)) on = 0
        }' "$1"
}
# max |a-b| / max(1, |a|) over two files of numbers, line by line; prints it
max_diff() {
    paste "$1" "$2" | awk '{ d = $1 - $2; if (d < 0) d = -d; s = $1 < 0 ? -$1 : $1; if (s < 1) s = 1;
                             if (d / s > m) m = d / s; n++ } END { if (n == 0) m = 1e300; printf "%.3g\n", m }'
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

cc -O2 -o "$T/gen" "$SRCDIR/bench/gen_ml_data.c" -lm
ok $? "compiled the data generator"
"$T/gen" train 250000 5 > "$T/all.csv"
head -n 200001 "$T/all.csv" > "$T/train.csv"
{ head -n 1 "$T/all.csv"; tail -n 50000 "$T/all.csv"; } > "$T/test.csv"

for dev in cpu gpu; do
    KILN_OUTPUTS="$T/$dev.out.json" "$TRAIN" --data "$T/train.csv" --out "$T/$dev.model.json" --device "$dev" 2> "$T/$dev.err"
    ok $? "kiln-train --device $dev"
    KILN_OUTPUTS="$T/$dev.eval.json" "$EVAL" --model "$T/$dev.model.json" --data "$T/test.csv" > /dev/null
    ok $? "kiln-eval of the $dev model"
done
sed 's/^/# /' "$T/gpu.err"
grep -q 'device gpu (requested gpu' "$T/gpu.err" && grep -q '"device":"gpu"' "$T/gpu.out.json"
ok $? "the GPU run logs and reports device gpu"
grep -q 'kiln-train: gpu: [0-9]* evaluations, kernel time' "$T/gpu.err"
ok $? "the GPU run logs its evaluations and kernel bandwidth"
for key in weights intercepts; do
    json_nums "$T/cpu.model.json" $key > "$T/cpu.$key"
    json_nums "$T/gpu.model.json" $key > "$T/gpu.$key"
    [ "$(wc -l < "$T/cpu.$key")" -gt 0 ] && [ "$(wc -l < "$T/cpu.$key")" -eq "$(wc -l < "$T/gpu.$key")" ]
    ok $? "$key: the same count in both models ($(wc -l < "$T/cpu.$key"))"
    m=$(max_diff "$T/cpu.$key" "$T/gpu.$key")
    le "$m" 1e-6; ok $? "$key: GPU vs CPU within 1e-6 (max difference $m)"
done
lc=$(sed 's/.*"train_loss":\([^,}]*\).*/\1/' "$T/cpu.out.json") lg=$(sed 's/.*"train_loss":\([^,}]*\).*/\1/' "$T/gpu.out.json")
awk -v a="$lc" -v b="$lg" 'BEGIN { d = (a - b) / a; if (d < 0) d = -d; exit !(d <= 1e-9) }'
ok $? "train loss: GPU $lg vs CPU $lc (1e-9 relative)"
ac=$(sed 's/.*"accuracy":\([^,}]*\).*/\1/' "$T/cpu.eval.json") ag=$(sed 's/.*"accuracy":\([^,}]*\).*/\1/' "$T/gpu.eval.json")
awk -v a="$ac" -v b="$ag" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4) }'
ok $? "test accuracy: GPU $ag vs CPU $ac (within 1e-4)"

# kiln-clean: moments, z-score clipping and standardizing on the GPU
"$T/gen" clean 100000 3 > "$T/clean.csv"
for dev in cpu gpu; do
    "$CLEAN" "$T/clean.csv" -o "$T/$dev.clean.csv" --dedup --impute mean --clip zscore:3 --scale standard \
        --onehot 10 --device "$dev" > "$T/$dev.sum.json" 2> "$T/$dev.clean.err"
    ok $? "kiln-clean --device $dev"
done
grep -q 'device gpu' "$T/gpu.clean.err" && grep -q '"device": "gpu"' "$T/gpu.sum.json"
ok $? "kiln-clean logs and reports device gpu"
awk -F, 'NR == FNR { a[FNR] = $0; next }
    { n = split(a[FNR], x, ","); if (n != NF) { bad++; next }
      for (i = 1; i <= NF; i++) {
          if (x[i] == $i) continue
          if (x[i] !~ /^-?[0-9.]/ || $i !~ /^-?[0-9.]/) { bad++; continue }
          d = x[i] - $i; if (d < 0) d = -d; s = x[i] < 0 ? -x[i] : x[i]; if (s < 1) s = 1
          if (d / s > m) m = d / s
          if (d / s > 1e-9) bad++ } }
    END { printf "%d %.3g\n", bad, m; exit bad != 0 || FNR == 0 }' "$T/cpu.clean.csv" "$T/gpu.clean.csv" > "$T/clean.diff"
ok $? "kiln-clean output: GPU vs CPU within 1e-9 (mismatches, max difference: $(cat "$T/clean.diff"))"
done_testing
