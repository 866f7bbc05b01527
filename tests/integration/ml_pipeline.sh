#!/bin/sh
# dags/ml_pipeline.yaml end to end with `kiln dags test` (the task programs are
# found through the PATH kiln gives its tasks): prepare -> train -> evaluate
# (gate) -> deploy into a registry, then an impossible gate that stops the run
# at evaluate.  Also dags/ml_sweep.lua, which deploys the best of three.
. "$SRCDIR/tests/lib/tap.sh"
W=$T/ml
kiln dags test "$SRCDIR/dags/ml_pipeline.yaml" -p workdir="$W" > "$T/run1.txt" 2>&1
rc=$?
sed 's/^/# /' "$T/run1.txt" | tail -15
is "$rc" 0 "kiln dags test dags/ml_pipeline.yaml succeeds"
grep -q 'evaluate .* success' "$T/run1.txt" && grep -q 'deploy .* success' "$T/run1.txt"
ok $? "the gate passed and deploy ran"
is "$(readlink "$W/registry/breast_cancer/current" 2>/dev/null)" 1 "version 1 is deployed and current"
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
$PY -c 'import json, sys; m = json.load(open(sys.argv[1]))["metrics"]; print("# deployed accuracy", m["accuracy"]); sys.exit(0 if m["accuracy"] >= 0.9 and m["n_test"] == 142 else 1)' \
    "$W/registry/breast_cancer/1/meta.json"
ok $? "the deployed version records the evaluation's accuracy (>= 0.9) on 142 test rows"
cmp -s "$W/registry/breast_cancer/1/model.json" "$(ls "$W"/runs/*/model.json | head -1)"
ok $? "the deployed model is the trained one"

kiln dags test "$SRCDIR/dags/ml_pipeline.yaml" -p workdir="$W" -p min_accuracy=1.01 > "$T/run2.txt" 2>&1
rc=$?
[ "$rc" -ne 0 ]; ok $? "with an impossible gate the run fails (exit $rc)"
grep -q 'evaluate .* failed' "$T/run2.txt"; ok $? "evaluate fails"
grep -q 'deploy .* upstream_failed' "$T/run2.txt"; ok $? "deploy is upstream_failed"
grep -q 'quality gate failed: accuracy' "$T/run2.txt"; ok $? "the log says why"
is "$(readlink "$W/registry/breast_cancer/current")" 1 "the registry still serves version 1"

kiln dags test "$SRCDIR/dags/ml_pipeline.yaml" -p workdir="$W" -p solver=adam > "$T/run3.txt" 2>&1
ok $? "a second run (adam) succeeds"
is "$(readlink "$W/registry/breast_cancer/current")" 2 "and deploys version 2"

kiln dags test "$SRCDIR/dags/ml_sweep.lua" -p workdir="$T/sweep" > "$T/sweep.txt" 2>&1
rc=$?
sed 's/^/# /' "$T/sweep.txt" | grep -E 'pick|deploy|run ' | tail -8
is "$rc" 0 "kiln dags test dags/ml_sweep.lua succeeds"
is "$(grep -c 'train_.* success' "$T/sweep.txt")" 3 "three learning rates trained"
is "$(readlink "$T/sweep/registry/breast_cancer_sweep/current" 2>/dev/null)" 1 "the best one is deployed"
$PY - "$T/sweep" <<'PYEOF'
import glob, json, sys
d = sys.argv[1]
meta = json.load(open(d + "/registry/breast_cancer_sweep/1/meta.json"))
best = meta["metrics"]["accuracy"]
print("# deployed", meta["metrics"])
sys.exit(0 if best >= 0.9 and meta["metrics"].get("lr") is not None else 1)
PYEOF
ok $? "the deployed model records its accuracy and learning rate"
done_testing
