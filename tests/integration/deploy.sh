#!/bin/sh
# kiln-deploy: publish into a versioned registry, the atomic "current" link,
# keep-last-N pruning that never removes the current version, rollback, list,
# KILN_OUTPUTS, and refusals (bad model, bad name, an existing version).
. "$SRCDIR/tests/lib/tap.sh"
B=$(dirname "$KILN_BIN")/tasks
DEPLOY=$B/deploy/kiln-deploy TRAIN=$B/train/kiln-train
[ -x "$DEPLOY" ] && [ -x "$TRAIN" ]; ok $? "kiln-deploy and kiln-train are built"
R=$T/registry
"$TRAIN" --data "$SRCDIR/data/breast_cancer.csv" --target target --out "$T/m1.json" --quiet --C 1
ok $? "trained a model"
"$TRAIN" --data "$SRCDIR/data/breast_cancer.csv" --target target --out "$T/m2.json" --quiet --C 0.01
ok $? "trained another"

KILN_OUTPUTS=$T/out1.json "$DEPLOY" publish --registry "$R" --name bc --model "$T/m1.json" \
    --metrics '{"accuracy": 0.95}' > "$T/stdout1.json" 2> "$T/err1"
ok $? "publish version 1"
is "$(readlink "$R/bc/current")" "1" "current -> 1"
[ -f "$R/bc/1/model.json" ] && [ -f "$R/bc/1/meta.json" ]; ok $? "the version folder holds model.json and meta.json"
cmp -s "$T/m1.json" "$R/bc/1/model.json"; ok $? "model.json is the published file, byte for byte"
grep -q '"accuracy": 0.95' "$R/bc/1/meta.json" && grep -q '"checksum": "fnv1a64:' "$R/bc/1/meta.json" &&
    grep -q '"version": 1' "$R/bc/1/meta.json"
ok $? "meta.json has the version, checksum and metrics"
[ "$(cat "$T/out1.json")" = "$(cat "$T/stdout1.json")" ] && grep -q '"version":1' "$T/out1.json" && grep -q '"path":' "$T/out1.json"
ok $? "the summary goes to stdout and KILN_OUTPUTS"

for i in 2 3 4; do "$DEPLOY" publish --registry "$R" --name bc --model "$T/m2.json" --keep 3 > "$T/p$i.json" 2>/dev/null || echo "publish $i failed"; done
is "$(readlink "$R/bc/current")" "4" "three more publishes: current -> 4"
is "$(ls "$R/bc" | tr '\n' ' ')" "2 3 4 current " "--keep 3 removed version 1"
grep -q '"removed":\[1\]' "$T/p4.json"; ok $? "the summary lists the removed versions"

KILN_OUTPUTS=$T/rb.json "$DEPLOY" rollback --registry "$R" --name bc > /dev/null 2>&1
ok $? "rollback"
is "$(readlink "$R/bc/current")" "3" "rollback: current -> 3"
grep -q '"version":3,"previous":4' "$T/rb.json"; ok $? "rollback summary: $(cat "$T/rb.json")"
"$DEPLOY" rollback --registry "$R" --name bc --to 4 > /dev/null 2>&1
is "$(readlink "$R/bc/current")" "4" "rollback --to 4 rolls forward"
"$DEPLOY" rollback --registry "$R" --name bc --to 2 > /dev/null 2>&1
"$DEPLOY" publish --registry "$R" --name bc --model "$T/m1.json" --keep 1 > /dev/null 2>&1
is "$(ls "$R/bc" | tr '\n' ' ')" "5 current " "--keep 1 keeps only the new current version"
"$DEPLOY" rollback --registry "$R" --name bc --to 2 > /dev/null 2> "$T/rb.err"
[ $? -eq 2 ] && grep -q 'no version 2' "$T/rb.err"; ok $? "rollback to a removed version is refused"
"$DEPLOY" rollback --registry "$R" --name bc > /dev/null 2> "$T/rb.err"
[ $? -eq 1 ] && is "$(readlink "$R/bc/current")" "5" "rollback with nothing before current fails and changes nothing"

"$DEPLOY" list --registry "$R" --name bc > "$T/list.json" 2>/dev/null
ok $? "list"
grep -q '"current":5' "$T/list.json" && grep -q '"version":5' "$T/list.json"; ok $? "list shows current and the versions' metadata"

echo '{"not": "a model"}' > "$T/bad.json"
"$DEPLOY" publish --registry "$R" --name bc --model "$T/bad.json" > /dev/null 2> "$T/bad.err"
[ $? -ne 0 ] && is "$(readlink "$R/bc/current")" "5" "an invalid model is refused: $(head -1 "$T/bad.err")"
"$DEPLOY" publish --registry "$R" --name ../x --model "$T/m1.json" > /dev/null 2>&1
[ $? -eq 2 ]; ok $? "a name with a slash is a usage error"
"$DEPLOY" publish --registry "$R" --name bc --model "$T/m1.json" --version 5 > /dev/null 2> "$T/v.err"
[ $? -eq 2 ] && grep -q 'exists already' "$T/v.err"; ok $? "publishing an existing version is refused"
"$DEPLOY" publish --registry "$R" --name bc --model "$T/m1.json" --version 10 > /dev/null 2>&1 &&
    is "$(readlink "$R/bc/current")" "10" "--version 10"
ls -a "$R/bc" | grep -q '^\.tmp-\|^\.current'; [ $? -ne 0 ]; ok $? "no temporary files are left behind"

# Concurrent publishes get distinct versions (the registry lock).
for i in 1 2 3 4 5 6; do "$DEPLOY" publish --registry "$R" --name race --model "$T/m1.json" --keep 10 > /dev/null 2>&1 & done
wait
is "$(ls "$R/race" | grep -c '^[0-9]')" "6" "six concurrent publishes made six versions"
done_testing
