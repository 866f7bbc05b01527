#!/bin/sh
# kiln-clean against an independent pandas oracle (tests/oracle/clean_oracle.py):
# each operation on a seeded CSV with quotes, embedded commas and newlines,
# CRLF, empty fields and NA markers; the JSON summary; kcol output; errors.
. "$SRCDIR/tests/lib/tap.sh"
CLEAN=${KILN_CLEAN:-$(dirname "$KILN_BIN")/tasks/clean/kiln-clean}
PY=python3
# Debian's python3-pandas lives in the system python
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
ORACLE="$PY $SRCDIR/tests/oracle/clean_oracle.py"
if ! $PY -c 'import pandas' 2>/dev/null; then
    echo "1..0 # SKIP python3-pandas not installed"; exit 0
fi
$ORACLE gen "$T/in.csv" 2000 7
ok $? "generated a seeded CSV"

check() { # name, then the ops
    name=$1; shift
    "$CLEAN" "$T/in.csv" -o "$T/got.csv" "$@" > "$T/sum.json" 2> "$T/err"
    ok $? "$name: kiln-clean ran"
    $ORACLE expect "$T/in.csv" "$T/want.csv" "$@"
    $ORACLE compare "$T/got.csv" "$T/want.csv"
    ok $? "$name: output matches pandas"
}
check "dedup" --dedup
check "impute mean" --impute mean
check "impute median" --dedup --impute median
check "impute most_frequent" --impute most_frequent
check "zscore clip + standardize" --impute mean --clip zscore:2 --scale standard
check "iqr clip + minmax" --impute median --clip iqr:1.5 --scale minmax
check "one-hot top-3" --dedup --impute most_frequent --onehot 3

KILN_OUTPUTS="$T/outputs.json" "$CLEAN" "$T/in.csv" -o "$T/got.csv" --dedup --impute mean --clip zscore:3 > "$T/stdout.json" 2> "$T/err"
ok $? "summary run"
cmp -s "$T/outputs.json" "$T/stdout.json"
ok $? "the summary in KILN_OUTPUTS is the one printed"
$ORACLE summary "$T/outputs.json" "$T/in.csv" --dedup --impute mean --clip zscore:3
ok $? "summary: rows, missing per column, means, stds, categories match pandas"
grep -q '"device": "cpu"' "$T/outputs.json"
ok $? "summary names the device"
grep -q 'device cpu' "$T/err"
ok $? "the device choice is logged"

"$CLEAN" "$T/in.csv" -o "$T/train.kcol" --impute mean --split 0.25 --seed 42 --test-output "$T/test.kcol" > "$T/s.json" 2>/dev/null
ok $? "kcol output with a split"
head -c 4 "$T/train.kcol" | grep -q KCOL
ok $? "kcol magic"
$PY -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s["rows_test"] == 500 and s["rows_train"] == 1500 else 1)' "$T/s.json"
ok $? "split: 25% of 2000 rows in test"
"$CLEAN" "$T/in.csv" -o "$T/a.csv" --split 0.3 --seed 9 --test-output "$T/at.csv" >/dev/null 2>&1 &&
"$CLEAN" "$T/in.csv" -o "$T/b.csv" --split 0.3 --seed 9 --test-output "$T/bt.csv" >/dev/null 2>&1 &&
cmp -s "$T/a.csv" "$T/b.csv" && cmp -s "$T/at.csv" "$T/bt.csv"
ok $? "the same seed gives the same split"

cat > "$T/spec.yaml" <<'YAML'
dedup: true
impute: mean
clip: zscore:2
scale: standard
YAML
"$CLEAN" "$T/in.csv" -o "$T/spec.csv" --spec "$T/spec.yaml" >/dev/null 2>&1
ok $? "spec file"
$ORACLE expect "$T/in.csv" "$T/want.csv" --dedup --impute mean --clip zscore:2 --scale standard
$ORACLE compare "$T/spec.csv" "$T/want.csv"
ok $? "the spec does what the flags do"

# More rows than one output block (8,192 rows): blocks are formatted in
# parallel and must come out complete and in order.
$ORACLE gen "$T/big.csv" 40000 11
"$CLEAN" "$T/big.csv" -o "$T/gotbig.csv" --dedup --impute mean --clip zscore:3 --scale standard --onehot 4 > /dev/null 2>&1
ok $? "40,000 rows: kiln-clean ran"
$ORACLE expect "$T/big.csv" "$T/wantbig.csv" --dedup --impute mean --clip zscore:3 --scale standard --onehot 4
$ORACLE compare "$T/gotbig.csv" "$T/wantbig.csv"
ok $? "40,000 rows: output matches pandas, row for row"
# Numbers are written as C's "%.17g" writes them (Python's % formatting is an
# independent implementation of it), and read back as the input's doubles.
"$CLEAN" "$T/big.csv" -o "$T/plain.csv" > /dev/null 2>&1
$PY - "$T/big.csv" "$T/plain.csv" <<'PYEOF'
import csv, sys
rows_in = list(csv.reader(open(sys.argv[1], newline="")))
rows_out = list(csv.reader(open(sys.argv[2], newline="")))
assert rows_in[0] == rows_out[0], (rows_in[0], rows_out[0])
assert len(rows_in) == len(rows_out), (len(rows_in), len(rows_out))
na = {"", "NA", "N/A", "n/a", "null", "NULL", "NaN", "nan", "None"}
checked = 0
for i, (a, b) in enumerate(zip(rows_in[1:], rows_out[1:])):
    for col in (1, 4):  # price, score: number columns
        if a[col] in na:
            assert b[col] == "", (i, col, a[col], b[col])
            continue
        x = float(a[col])
        assert b[col] == "%.17g" % x, (i, col, a[col], b[col])
        assert float(b[col]) == x
        checked += 1
    assert a[3] == b[3] or (a[3] in na and b[3] == ""), (i, a[3], b[3])
assert checked > 70000, checked
PYEOF
ok $? "40,000 rows unchanged: every number is \"%.17g\" of the input's double"

printf 'a,b\r\n1,2\r\n3,"open\r\n4,5\r\n' > "$T/bad.csv"
"$CLEAN" "$T/bad.csv" -o "$T/x.csv" > /dev/null 2> "$T/err"
rc=$?
[ "$rc" -ne 0 ]
ok $? "an unterminated quote fails"
grep -q "bad.csv:3: unterminated quoted field" "$T/err"
ok $? "the error names file:line"
"$CLEAN" "$T/in.csv" --device gpu > /dev/null 2>&1
is $? 2 "--device gpu without CUDA is a usage error"
done_testing
