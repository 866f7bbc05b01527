#!/bin/sh
# kiln-train and kiln-eval against scikit-learn (Debian's python3-sklearn) on the
# data sets it ships, plus the quality gate, KILN_OUTPUTS, determinism, --device.
. "$SRCDIR/tests/lib/tap.sh"
bindir=$(dirname "$KILN_BIN")/tasks/train
TRAIN=$bindir/kiln-train EVAL=$bindir/kiln-eval
[ -x "$TRAIN" ] && [ -x "$EVAL" ]; ok $? "kiln-train and kiln-eval are built"

PY=""
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import sklearn, numpy' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    echo "ok 2 # SKIP python3-sklearn is not installed (./dev.sh test installs it)"
    echo "1..2"
    exit 0
fi

"$PY" "$SRCDIR/tests/oracle/sklearn_compare.py" "$TRAIN" "$EVAL" "$T" "$T/cmp.tsv" > "$T/cmp.txt" 2> "$T/cmp.err"
ok $? "the comparison script ran"
sed 's/^/# /' "$T/cmp.txt" "$T/cmp.err"
tab=$(printf '\t')
while IFS="$tab" read -r name kv sv tol; do
    [ "$tol" = "-" ] && continue
    awk -v a="$kv" -v b="$sv" -v t="$tol" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t + 1e-9) }'
    ok $? "$name: kiln $kv vs scikit-learn $sv (within $tol)"
done < "$T/cmp.tsv"
n=$(grep -c 'accuracy' "$T/cmp.tsv" 2>/dev/null || echo 0)
[ "$n" -ge 9 ]; ok $? "accuracy compared on breast_cancer, wine and iris ($n rows)"

# The quality gate: a bound that is not met fails the step with a message.
m=$T/wine.model.json
KILN_OUTPUTS=$T/gate.json "$EVAL" --model "$m" --data "$T/wine.test.csv" --min-accuracy 0.5 --max log_loss=1 > /dev/null
ok $? "kiln-eval passes a gate that is met"
grep -q '"accuracy":' "$T/gate.json" && grep -q '"gate":"passed"' "$T/gate.json" && grep -q '"confusion_matrix":\[\[' "$T/gate.json"
ok $? "kiln-eval writes its metrics, gate and confusion matrix to KILN_OUTPUTS"
"$EVAL" --model "$T/breast_cancer.model.json" --data "$T/breast_cancer.test.csv" --min-accuracy 0.999 > /dev/null 2> "$T/gate.err"
rc=$?
[ "$rc" -eq 1 ]; ok $? "kiln-eval --min-accuracy 0.999 exits 1 (got $rc)"
grep -q 'quality gate failed: accuracy 0.95.* < 0.999' "$T/gate.err"; ok $? "and says why: $(cat "$T/gate.err")"
"$EVAL" --model "$T/diabetes-linear.model.json" --data "$T/diabetes.test.csv" --min r2=0.9 > /dev/null 2>&1
[ $? -eq 1 ]; ok $? "kiln-eval --min r2=0.9 fails a regression model"
"$EVAL" --model "$m" --data "$T/wine.test.csv" --min rmse=1 > /dev/null 2> "$T/bad.err"
[ $? -eq 2 ] && grep -q 'no such metric' "$T/bad.err"; ok $? "a metric the model has not is a usage error"

# kiln-train's own outputs, determinism with a seed, --device.
KILN_OUTPUTS=$T/train.json "$TRAIN" --data "$T/iris.train.csv" --out "$T/a.json" --solver adam --seed 7 \
    --epochs 50 --val-fraction 0.2 2> "$T/train.log"
ok $? "kiln-train adam with a validation split"
grep -q '"train_accuracy":' "$T/train.json" && grep -q '"val_accuracy":' "$T/train.json"; ok $? "kiln-train writes KILN_OUTPUTS"
grep -q '^epoch 1/50 loss .* val_loss .* examples/s' "$T/train.log"; ok $? "progress lines on stderr"
grep -q 'device cpu (requested auto' "$T/train.log"; ok $? "the device choice is logged"
"$TRAIN" --data "$T/iris.train.csv" --out "$T/b.json" --solver adam --seed 7 --epochs 50 --val-fraction 0.2 --quiet
cmp -s "$T/a.json" "$T/b.json"; ok $? "the same seed gives the same model file, byte for byte"
"$TRAIN" --data "$T/iris.train.csv" --out "$T/c.json" --solver adam --seed 8 --epochs 50 --val-fraction 0.2 --quiet
! cmp -s "$T/a.json" "$T/c.json"; ok $? "another seed another model"
grep -q '"checksum": "fnv1a64:' "$T/a.json" && grep -q '"version": 1' "$T/a.json" && grep -q '"classes"' "$T/a.json"
ok $? "the model file describes itself (version, classes, data checksum)"
"$TRAIN" --data "$T/iris.train.csv" --out "$T/g.json" --device gpu 2> "$T/gpu.err"
[ $? -eq 2 ] && grep -q -- '--device gpu: ' "$T/gpu.err"; ok $? "--device gpu without a GPU solver fails clearly: $(cat "$T/gpu.err")"
# kiln-clean's kcol output as input: the same rows give the same model
CLEAN=$(dirname "$KILN_BIN")/tasks/clean/kiln-clean
"$CLEAN" "$T/breast_cancer.train.csv" -o "$T/bc.kcol" --device cpu > /dev/null 2>&1 &&
    "$CLEAN" "$T/breast_cancer.test.csv" -o "$T/bct.kcol" --device cpu > /dev/null 2>&1
ok $? "kiln-clean converts the breast_cancer files to kcol"
"$TRAIN" --data "$T/breast_cancer.train.csv" --out "$T/bc-csv.json" --quiet &&
    "$TRAIN" --data "$T/bc.kcol" --out "$T/bc-kcol.json" --quiet
ok $? "kiln-train reads the CSV and the kcol file"
grep -v '"path"\|"checksum"' "$T/bc-csv.json" > "$T/bc-csv.cmp"; grep -v '"path"\|"checksum"' "$T/bc-kcol.json" > "$T/bc-kcol.cmp"
cmp -s "$T/bc-csv.cmp" "$T/bc-kcol.cmp"; ok $? "the same model from both (but the input's path and checksum)"
KILN_OUTPUTS=$T/ev-kcol.json "$EVAL" --model "$T/bc-kcol.json" --data "$T/bct.kcol" > /dev/null &&
    KILN_OUTPUTS=$T/ev-csv.json "$EVAL" --model "$T/bc-csv.json" --data "$T/breast_cancer.test.csv" > /dev/null
ok $? "kiln-eval reads kcol"
[ "$(sed 's/"data_checksum":"[^"]*"//' "$T/ev-kcol.json")" = "$(sed 's/"data_checksum":"[^"]*"//' "$T/ev-csv.json")" ]
ok $? "and gives the same metrics as from the CSV"
"$TRAIN" --data "$T/nonexistent.csv" --out "$T/x.json" 2> "$T/nf.err"
[ $? -eq 2 ] && grep -q 'nonexistent.csv' "$T/nf.err"; ok $? "a missing input is a usage error naming the file"
done_testing
