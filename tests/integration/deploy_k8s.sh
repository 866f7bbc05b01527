#!/bin/sh
# kiln-deploy --k8s-apply against kube-sim (tests/kube-sim, Deployments and
# Services in objects.py): publish creates the model's Deployment + Service,
# a second version updates them in place, rollback re-applies the previous
# version, `apply` applies a version without touching the registry, and the
# pinned kiln-serve args really serve that version.  The deploy step's Role
# (deploy/model-serve-rbac.yaml) is loaded into kube-sim: it is enough, and
# each of its verbs is needed (403 without it).  Errors: 403, 404 namespace,
# 401, an object of another model; the registry is unchanged after each.
# Also kube-sim's own answers for these objects (409 Conflict/AlreadyExists,
# 422, 404).
. "$SRCDIR/tests/lib/tap.sh"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
B=$(dirname "$KILN_BIN")/tasks
DEPLOY=$B/deploy/kiln-deploy TRAIN=$B/train/kiln-train SERVE=$B/serve/kiln-serve
TOKEN=kiln-deploy-test-token-0123456789
SA=system:serviceaccount:kiln:kiln-deploy
SIM= SERVE_PID=
trap 'for p in $SIM $SERVE_PID; do kill "$p" 2>/dev/null; done; _cleanup' EXIT
"$PY" "$SRCDIR/tests/kube-sim/kube-sim.py" --port 0 --port-file "$T/port" --token "$TOKEN" --manual \
    > "$T/sim.log" 2>&1 &
SIM=$!
wait_for "[ -s '$T/port' ]" 10
ok $? "kube-sim started"
API=http://127.0.0.1:$(cat "$T/port")

kubeconfig() { # FILE TOKEN SERVER
    cat > "$1" <<EOF
apiVersion: v1
kind: Config
current-context: sim
clusters: [{name: sim, cluster: {server: "$3"}}]
users: [{name: deployer, user: {token: "$2"}}]
contexts: [{name: sim, context: {cluster: sim, user: deployer, namespace: models}}]
EOF
}
kubeconfig "$T/kc" "$TOKEN" "$API"
kubeconfig "$T/kc.badtoken" "wrong-token-0123456789" "$API"
export KUBECONFIG="$T/kc"
# api METHOD PATH [BODY]: prints the body, then "HTTP NNN" on its own line.
api() {
    curl -s -X "$1" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        ${3:+--data-binary "$3"} -w '\nHTTP %{http_code}\n' "$API$2"
}
get() { api GET "$2" | sed '$d' > "$1"; }
# j FILE EXPR: EXPR over the JSON document o of FILE
j() { "$PY" -c 'import json, sys; o = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# rbac RULES-JSON: the deploy step's permissions in kube-sim
rbac() { api POST /_sim/rbac "{\"user\": \"$SA\", \"rules\": $1}" > /dev/null; }
ROLE=$("$PY" -c '
import json, sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
print(json.dumps([d for d in docs if d["kind"] == "Role"][0]["rules"]))' "$SRCDIR/deploy/model-serve-rbac.yaml")
DEP=/apis/apps/v1/namespaces/models/deployments/kiln-serve-bc
SVC=/api/v1/namespaces/models/services/kiln-serve-bc

"$TRAIN" --data "$SRCDIR/data/breast_cancer.csv" --target target --out "$T/m.json" --quiet --C 1
ok $? "trained a model"
R=$T/registry
rbac "$ROLE"
api POST /_sim/objects '{"namespaces": ["models", "kiln"]}' > /dev/null

# -- first version: created
"$DEPLOY" publish --registry "$R" --name bc --model "$T/m.json" --k8s-apply --image reg.example/kiln-tasks:t1 \
    > "$T/p1.json" 2> "$T/p1.err"
ok $? "publish --k8s-apply version 1 with the deploy Role's verbs only"
grep -q '^kiln-deploy: bc version 1: deployment kiln-serve-bc created in namespace models$' "$T/p1.err"
ok $? "it says so: $(grep deployment "$T/p1.err")"
is "$(j "$T/p1.json" 'o["kubernetes"]["deployment_action"], o["kubernetes"]["service_action"], o["kubernetes"]["namespace"]')" \
    "('created', 'created', 'models')" "summary: both created, namespace from the kubeconfig context"
get "$T/d1.json" "$DEP"
is "$(j "$T/d1.json" 'o["spec"]["template"]["spec"]["containers"][0]["image"]')" "reg.example/kiln-tasks:t1" "Deployment image"
is "$(j "$T/d1.json" '" ".join(o["spec"]["template"]["spec"]["containers"][0]["args"])')" \
    "--registry /models --name bc --version 1 --bind 0.0.0.0 --port 8500" "Deployment args pin version 1"
is "$(j "$T/d1.json" 'o["metadata"]["labels"]["kiln.io/model"], o["spec"]["template"]["metadata"]["labels"]["kiln.io/model-version"], o["metadata"]["generation"]')" \
    "('bc', '1', 1)" "labels: model bc, pod template version 1; generation 1"
is "$(j "$T/d1.json" 'o["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]')" "kiln-models" "registry PVC"
get "$T/s1.json" "$SVC"
is "$(j "$T/s1.json" 'sorted(o["spec"]["selector"].items()) == sorted(o["spec"]["selector"].items() & __import__("json").load(open(sys.argv[1].replace("s1", "d1")))["spec"]["template"]["metadata"]["labels"].items())')" \
    "True" "the Service selects the Deployment's pods"
IP1=$(j "$T/s1.json" 'o["spec"]["clusterIP"]')
is "$(readlink "$R/bc/current")" "1" "current -> 1"

# -- second version: the same objects, updated in place
"$DEPLOY" publish --registry "$R" --name bc --model "$T/m.json" --k8s-apply --image reg.example/kiln-tasks:t2 \
    > "$T/p2.json" 2> "$T/p2.err"
ok $? "publish version 2"
is "$(j "$T/p2.json" 'o["kubernetes"]["deployment_action"], o["kubernetes"]["service_action"]')" "('updated', 'updated')" "summary: updated"
get "$T/d2.json" "$DEP"
is "$(j "$T/d2.json" 'o["metadata"]["uid"]')" "$(j "$T/d1.json" 'o["metadata"]["uid"]')" "the same Deployment (uid)"
is "$(j "$T/d2.json" 'o["spec"]["template"]["spec"]["containers"][0]["args"][5], o["spec"]["template"]["metadata"]["labels"]["kiln.io/model-version"], o["metadata"]["generation"], o["spec"]["template"]["spec"]["containers"][0]["image"]')" \
    "('2', '2', 2, 'reg.example/kiln-tasks:t2')" "version 2 in args and labels, generation 2, new image"
get "$T/s2.json" "$SVC"
is "$(j "$T/s2.json" 'o["spec"]["clusterIP"], o["metadata"]["labels"]["kiln.io/model-version"]')" "('$IP1', '2')" "the Service kept its clusterIP"
is "$(readlink "$R/bc/current")" "2" "current -> 2"

# -- rollback re-applies version 1
"$DEPLOY" rollback --registry "$R" --name bc --k8s-apply --image reg.example/kiln-tasks:t2 > "$T/rb.json" 2> "$T/rb.err"
ok $? "rollback --k8s-apply"
get "$T/d3.json" "$DEP"
is "$(j "$T/d3.json" 'o["spec"]["template"]["spec"]["containers"][0]["args"][5], o["metadata"]["generation"]')" "('1', 3)" "rollback: Deployment back on version 1 (generation 3)"
is "$(readlink "$R/bc/current")" "1" "rollback: current -> 1"
is "$(j "$T/rb.json" 'o["version"], o["previous"], o["kubernetes"]["deployment_action"]')" "(1, 2, 'updated')" "rollback summary"

# -- a PUT that loses a race (409 Conflict) starts over from a GET; the third loss ends it
puts() { api POST /_sim/objects "{$1}" | sed '$d' > "$T/puts.json"; j "$T/puts.json" 'o["puts"]'; }
P0=$(puts '"conflicts": 2')
"$DEPLOY" apply --registry "$R" --name bc > /dev/null 2> "$T/cf.err"
ok $? "apply after losing two races: done ($(cat "$T/cf.err"))"
is "$(( $(puts '') - P0 ))" "4" "3 PUTs of the Deployment (2 lost), 1 of the Service"
puts '"conflicts": 3' > /dev/null
"$DEPLOY" apply --registry "$R" --name bc > /dev/null 2> "$T/cf3.err"
[ $? -eq 1 ] && grep -q 'cannot apply deployments.apps "kiln-serve-bc" in namespace "models": 409 Conflict: Operation cannot be fulfilled' "$T/cf3.err"
ok $? "three lost races: exit 1 ($(head -c 150 "$T/cf3.err"))"
puts '"conflicts": 0' > /dev/null

# -- apply: version 2 to the cluster, the registry untouched; its args serve version 2
"$DEPLOY" apply --registry "$R" --name bc --version 2 --image reg.example/kiln-tasks:t2 > /dev/null 2> "$T/ap.err"
ok $? "apply --version 2"
get "$T/d4.json" "$DEP"
is "$(j "$T/d4.json" 'o["spec"]["template"]["spec"]["containers"][0]["args"][5]')/$(readlink "$R/bc/current")" "2/1" \
    "apply: the Deployment serves 2, current stays 1"
# Run the container's command + args as a kubelet would, the registry where
# the PVC would be mounted and a free port.
ARGS=$(j "$T/d4.json" '" ".join(o["spec"]["template"]["spec"]["containers"][0]["args"])' |
       sed -e "s,--registry /models,--registry $R," -e 's,--port 8500,--port 0,' -e 's,0\.0\.0\.0,127.0.0.1,')
# shellcheck disable=SC2086
"$SERVE" $ARGS > "$T/serve.log" 2>&1 &
SERVE_PID=$!
wait_for "grep -q 'listening on' '$T/serve.log'" 10
SPORT=$(sed -n 's,.*listening on http://127.0.0.1:\([0-9]*\).*,\1,p' "$T/serve.log")
is "$(curl -s "http://127.0.0.1:$SPORT/healthz")" '{"status":"ok","version":2}' "kiln-serve with the Deployment's args serves version 2 (current is 1)"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null; SERVE_PID=

# -- every verb of the Role is needed: without it, 403 naming the verb
i=0
for case in "apps deployments get" "apps deployments create" "apps deployments update" \
            " services get" " services create" " services update"; do
    i=$((i + 1))
    set -- $case
    [ $# -eq 2 ] && set -- "" "$1" "$2"
    rules=$(echo "$ROLE" | "$PY" -c '
import json, sys
rules = json.load(sys.stdin)
for r in rules:
    if sys.argv[1] in r["apiGroups"] and sys.argv[2] in r["resources"]:
        r["verbs"].remove(sys.argv[3])
print(json.dumps(rules))' "$1" "$2" "$3")
    rbac "$rules"
    api POST /_sim/objects "{\"namespaces\": [\"models\", \"kiln\", \"c$i\"]}" > /dev/null
    rc=0
    for v in 1 2; do
        "$DEPLOY" publish --registry "$T/r$i" --name bc --model "$T/m.json" --k8s-apply --namespace "c$i" \
            > /dev/null 2> "$T/c$i.err" || { rc=$?; break; }
    done
    [ "$rc" -eq 1 ] && grep -q "forbidden: User \"$SA\" cannot $3 resource \"$2\" in API group \"$1\" in the namespace \"c$i\"" "$T/c$i.err"
    ok $? "without $3 on $2: 403 naming it ($(head -c 160 "$T/c$i.err"))"
done
rbac "$ROLE"

# -- refusals leave the registry unchanged
registry_state() { echo "$(ls "$R/bc" | tr '\n' ' ')$(readlink "$R/bc/current")"; }
BEFORE=$(registry_state)
rbac "$(echo "$ROLE" | sed 's/"update"//; s/, *\]/]/; s/\[ *, */[/')"
"$DEPLOY" publish --registry "$R" --name bc --model "$T/m.json" --k8s-apply > /dev/null 2> "$T/e403"
rc=$?
rbac "$ROLE"
[ $rc -eq 1 ] && grep -q '^kiln-deploy: cannot update deployments.apps "kiln-serve-bc" in namespace "models": 403 Forbidden: deployments.apps "kiln-serve-bc" is forbidden' "$T/e403" &&
    grep -q 'deploy/model-serve-rbac.yaml' "$T/e403"
ok $? "403: exit 1, the Status message and a hint: $(head -c 200 "$T/e403")"
is "$(registry_state)" "$BEFORE" "403: no new version folder, current unchanged"

"$DEPLOY" publish --registry "$R" --name bc --model "$T/m.json" --k8s-apply --namespace nope > /dev/null 2> "$T/e404"
[ $? -eq 1 ] && grep -q 'in namespace "nope": 404 NotFound: namespaces "nope" not found' "$T/e404"
ok $? "404: a namespace that does not exist ($(cat "$T/e404"))"
is "$(registry_state)" "$BEFORE" "404: registry unchanged"

"$DEPLOY" rollback --registry "$R" --name bc --to 2 --k8s-apply --kubeconfig "$T/kc.badtoken" > /dev/null 2> "$T/e401"
[ $? -eq 1 ] && grep -q '401 Unauthorized: Unauthorized (check the token' "$T/e401"
ok $? "401: a wrong token ($(cat "$T/e401"))"
is "$(registry_state)" "$BEFORE" "401: rollback changed nothing"

api POST /apis/apps/v1/namespaces/models/deployments '{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "kiln-serve-other", "labels": {"app": "other"}},
  "spec": {"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}},
  "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}' > "$T/other.out"
"$DEPLOY" publish --registry "$R" --name Other --model "$T/m.json" --k8s-apply > /dev/null 2> "$T/eown"
[ $? -eq 1 ] && grep -q 'deployments.apps "kiln-serve-other" in namespace "models" exists and does not serve model .Other.' "$T/eown"
ok $? "an object of something else is not replaced ($(cat "$T/eown"))"
get "$T/other.json" /apis/apps/v1/namespaces/models/deployments/kiln-serve-other
is "$(j "$T/other.json" 'o["metadata"]["generation"], o["spec"]["template"]["spec"]["containers"][0]["image"]')" "(1, 'nginx:1')" "it is untouched"
"$DEPLOY" publish --registry "$R" --name _bad --model "$T/m.json" --k8s-apply > /dev/null 2> "$T/ename"
[ $? -eq 1 ] && grep -q "model name '_bad' cannot name Kubernetes objects" "$T/ename"
ok $? "a model name that cannot name objects: $(cat "$T/ename")"

KUBECONFIG=$T/kc.closed
kubeconfig "$T/kc.closed" "$TOKEN" "http://127.0.0.1:1"
"$DEPLOY" apply --registry "$R" --name bc > /dev/null 2> "$T/econn"
[ $? -eq 1 ] && grep -q 'GET http://127.0.0.1:1/apis/apps/v1/namespaces/models/deployments/kiln-serve-bc: ' "$T/econn"
ok $? "no API server: $(cat "$T/econn")"
KUBECONFIG=$T/kc

# -- TLS: the CA from a file and from certificate-authority-data; none: refused
if command -v openssl > /dev/null 2>&1; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -days 1 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 > /dev/null 2>&1
    "$PY" "$SRCDIR/tests/kube-sim/kube-sim.py" --port 0 --port-file "$T/tport" --manual \
        --tls-cert "$T/tls.crt" --tls-key "$T/tls.key" > "$T/tsim.log" 2>&1 &
    SIM="$SIM $!"
    wait_for "[ -s '$T/tport' ]" 10
    TAPI=https://127.0.0.1:$(cat "$T/tport")
    kubeconfig "$T/kc.tls" "$TOKEN" "$TAPI"
    sed 's,server: ,certificate-authority: tls.crt\, server: ,' "$T/kc.tls" > "$T/kc.ca"
    sed "s,server: ,certificate-authority-data: $(base64 -w0 < "$T/tls.crt")\, server: ," "$T/kc.tls" > "$T/kc.cadata"
    "$DEPLOY" apply --registry "$R" --name bc --kubeconfig "$T/kc.ca" > "$T/tls1.json" 2> "$T/tls1.err"
    ok $? "https with certificate-authority (a file beside the kubeconfig) $(cat "$T/tls1.err")"
    "$DEPLOY" apply --registry "$R" --name bc --kubeconfig "$T/kc.cadata" > "$T/tls2.json" 2> "$T/tls2.err"
    is "$? $(j "$T/tls2.json" 'o["kubernetes"]["deployment_action"], o["kubernetes"]["server"]')" \
        "0 ('updated', '$TAPI')" "https with certificate-authority-data"
    "$DEPLOY" apply --registry "$R" --name bc --kubeconfig "$T/kc.tls" > /dev/null 2> "$T/tls3.err"
    [ $? -eq 1 ] && grep -qi 'certificate' "$T/tls3.err"
    ok $? "https with an unknown CA is refused: $(cat "$T/tls3.err")"
else
    for i in 1 2 3; do ok 0 "# SKIP TLS: no openssl"; done
fi

# -- kube-sim's answers for these objects, as the real server's (no RBAC)
api POST /_sim/rbac '{"rules": null}' > /dev/null
api PUT "$DEP" "$(j "$T/d1.json" '__import__("json").dumps(o)')" > "$T/stale"
grep -q '^HTTP 409' "$T/stale" && grep -q '"reason": "Conflict"' "$T/stale" &&
    grep -q 'Operation cannot be fulfilled on deployments.apps \\"kiln-serve-bc\\": the object has been modified' "$T/stale"
ok $? "a PUT with a stale resourceVersion: 409 Conflict"
api POST /apis/apps/v1/namespaces/models/deployments "$(j "$T/d1.json" '__import__("json").dumps(o)')" > "$T/dup"
grep -q '^HTTP 409' "$T/dup" && grep -q 'deployments.apps \\"kiln-serve-bc\\" already exists' "$T/dup"
ok $? "a second create: 409 AlreadyExists"
api PUT "$DEP" "$(j "$T/d4.json" '__import__("json").dumps(dict(o, spec=dict(o["spec"], selector={"matchLabels": {"x": "y"}})))')" > "$T/imm"
grep -q '^HTTP 422' "$T/imm" && grep -q 'spec.selector: Invalid value: .*field is immutable' "$T/imm"
ok $? "a changed selector: 422 field is immutable"
api POST /api/v1/namespaces/models/services '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "9svc"},
  "spec": {"ports": [{"port": 80}]}}' > "$T/bad"
grep -q '^HTTP 422' "$T/bad" && grep -q 'Service \\"9svc\\" is invalid: metadata.name: Invalid value: \\"9svc\\": a DNS-1035 label' "$T/bad"
ok $? "a Service name that is no DNS-1035 label: 422"
api GET /apis/apps/v1/namespaces/models/deployments/nope > "$T/nf"
grep -q '^HTTP 404' "$T/nf" && grep -q 'deployments.apps \\"nope\\" not found' "$T/nf"
ok $? "GET of a missing Deployment: 404 NotFound"
api GET '/apis/apps/v1/namespaces/models/deployments?labelSelector=kiln.io/model%3Dbc' | sed '$d' > "$T/list.json"
is "$(j "$T/list.json" '[d["metadata"]["name"] for d in o["items"]]')" "['kiln-serve-bc']" "list by label selector"
curl -s -o /dev/null -w '%{http_code}' "$API$DEP" > "$T/noauth"
is "$(cat "$T/noauth")" "401" "no token: 401"
done_testing
