#!/bin/sh
# kiln-serve: predictions equal kiln-eval's on the same rows, array and object
# rows, /healthz and /model, 400s with a JSON error for bad requests, the body
# limit, and hot reloads when kiln-deploy flips or rolls back "current".
. "$SRCDIR/tests/lib/tap.sh"
B=$(dirname "$KILN_BIN")/tasks
SERVE=$B/serve/kiln-serve DEPLOY=$B/deploy/kiln-deploy TRAIN=$B/train/kiln-train
EVAL=$B/train/kiln-eval CLEAN=$B/clean/kiln-clean
[ -x "$SERVE" ] && [ -x "$DEPLOY" ]; ok $? "kiln-serve and kiln-deploy are built"
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
R=$T/registry
"$CLEAN" "$SRCDIR/data/breast_cancer.csv" -o "$T/train.csv" --split 0.25 --seed 3 --test-output "$T/test.csv" > /dev/null 2>&1 &&
"$TRAIN" --data "$T/train.csv" --target target --out "$T/m1.json" --quiet &&
"$TRAIN" --data "$T/train.csv" --target target --out "$T/m2.json" --quiet --C 0.001 &&
"$DEPLOY" publish --registry "$R" --name bc --model "$T/m1.json" > /dev/null 2>&1
ok $? "trained two models and published the first"

"$SERVE" --registry "$R" --name bc --port 0 --poll-ms 200 --max-body 200000 > "$T/serve.log" 2>&1 &
SPID=$!
wait_for "grep -q 'listening on' '$T/serve.log'" 20
ok $? "kiln-serve started"
PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$T/serve.log" | head -1)
U=http://127.0.0.1:$PORT
stop_serve() { [ -n "${SPID:-}" ] && kill -TERM "$SPID" 2>/dev/null; }
trap 'stop_serve; _cleanup' EXIT

get() { curl -s -o "$T/body" -w '%{http_code}' "$U$1"; }
post() { curl -s -o "$T/body" -w '%{http_code}' -H 'content-type: application/json' --data-binary "$2" "$U$1"; }
is "$(get /healthz)" 200 "GET /healthz"
grep -q '"status":"ok","version":1' "$T/body"; ok $? "healthz names the version: $(cat "$T/body")"
is "$(get /model)" 200 "GET /model"
grep -q '"version":1' "$T/body" && grep -q '"kind":"logistic"' "$T/body" && grep -q '"classes":\[0,1\]' "$T/body" &&
    grep -q '"features":\["mean_radius"' "$T/body"
ok $? "/model: version, kind, classes, features"

# Every test row, as arrays and as objects; kiln-eval on the same rows.
$PY - "$T/test.csv" "$T/rows.json" "$T/objs.json" <<'PYEOF'
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1])))
head, data = rows[0], rows[1:]
X = [[float(v) for v in r[:-1]] for r in data]
json.dump({"rows": X}, open(sys.argv[2], "w"))
json.dump({"rows": [dict(zip(head[:-1], x)) for x in X]}, open(sys.argv[3], "w"))
PYEOF
is "$(curl -s -o "$T/pred.json" -w '%{http_code}' --data-binary @"$T/rows.json" "$U/predict")" 200 "POST /predict with array rows"
is "$(curl -s -o "$T/pred2.json" -w '%{http_code}' --data-binary @"$T/objs.json" "$U/predict")" 200 "POST /predict with object rows"
cmp -s "$T/pred.json" "$T/pred2.json"; ok $? "array and object rows give the same answer"
"$EVAL" --model "$T/m1.json" --data "$T/test.csv" > "$T/eval.json" 2>/dev/null
$PY - "$T/test.csv" "$T/pred.json" "$T/eval.json" <<'PYEOF'
import csv, json, math, sys
y = [float(r[-1]) for r in list(csv.reader(open(sys.argv[1])))[1:]]
p = json.load(open(sys.argv[2])); e = json.load(open(sys.argv[3]))
acc = sum(a == b for a, b in zip(p["predictions"], y)) / len(y)
ll = -sum(math.log(min(max(pr[int(t)], 1e-15), 1 - 1e-15)) for pr, t in zip(p["probabilities"], y)) / len(y)
ok = len(p["predictions"]) == len(y) == e["n"] and acc == e["accuracy"] and abs(ll - e["log_loss"]) < 1e-12
ok = ok and all(abs(sum(pr) - 1) < 1e-12 for pr in p["probabilities"])
print("# served accuracy %r log_loss %r; kiln-eval %r %r" % (acc, ll, e["accuracy"], e["log_loss"]))
sys.exit(0 if ok else 1)
PYEOF
ok $? "served predictions and probabilities match kiln-eval (accuracy, log loss)"

bad() { # body, expected message part, description
    code=$(post /predict "$1")
    [ "$code" = 400 ] && grep -q '"error":".*'"$2" "$T/body"
    ok $? "$3 -> $code $(cat "$T/body")"
}
bad '{"rows": [[1, 2' 'not JSON' "truncated JSON"
bad 'hello' 'not JSON' "not JSON"
bad '{"rows": [[1, 2, 3]]}' 'has 3 values, the model has 30' "a short row"
bad '{"rows": [{"mean_radius": 1}]}' 'has 1 fields' "an object row missing features"
bad '{"rows": []}' 'rows' "no rows"
bad '{"data": [[1]]}' 'array \\"rows\\"' "no rows key"
bad '{"rows": [["a",1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]]}' 'not a number' "a string value"
bad '{"rows": [[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]]} x' 'trailing' "trailing garbage"
is "$(get /predict)" 405 "GET /predict is 405"
is "$(get /nope)" 404 "an unknown path is 404"
$PY -c 'import json; print(json.dumps({"rows": [[1.0]*30]*3000}))' > "$T/big.json"
code=$(curl -s -o "$T/body" -w '%{http_code}' --data-binary @"$T/big.json" "$U/predict")
is "$code" 413 "a body over --max-body is refused"

# Hot reload: a new version is served without a restart; rollback too.
"$DEPLOY" publish --registry "$R" --name bc --model "$T/m2.json" > /dev/null 2>&1
wait_for "curl -s '$U/model' | grep -q '\"version\":2'" 10
ok $? "after a publish /model shows version 2"
post /predict '{"rows": [[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]]}' > /dev/null
grep -q '"version":2' "$T/body"; ok $? "and /predict uses it"
"$DEPLOY" rollback --registry "$R" --name bc > /dev/null 2>&1
wait_for "curl -s '$U/model' | grep -q '\"version\":1'" 10
ok $? "after a rollback /model shows version 1 again"
mkdir "$R/bc/7" && echo '{"broken": true}' > "$R/bc/7/model.json" && ln -sfn 7 "$R/bc/current"
sleep 0.6
get /healthz > /dev/null
grep -q '"version":1' "$T/body"; ok $? "a version that does not load leaves the old one serving"
grep -q 'cannot load bc version 7, still serving 1' "$T/serve.log"; ok $? "and is logged"
kill -0 "$SPID"; ok $? "the server never restarted"
kill -TERM "$SPID"; wait "$SPID"; rc=$?; SPID=
is "$rc" 0 "SIGTERM stops it cleanly"
sed 's/^/# /' "$T/serve.log"
done_testing
