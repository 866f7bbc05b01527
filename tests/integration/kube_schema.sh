#!/bin/sh
# Pods built by executors/kube_pod.c (through tests/kube-sim/kube-podgen)
# against the official Kubernetes OpenAPI schema (../shared/k8s beside the
# checkout; those checks SKIP when it is absent), then created in kube-sim,
# where one runs to Succeeded and its log is read through the API.
set -u
: "${KILN_BIN:?}" "${SRCDIR:=.}"
PY=python3
export PYTHONDONTWRITEBYTECODE=1
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
PODGEN=${KUBE_PODGEN:-$(dirname "$KILN_BIN")/tests/kube-sim/kube-podgen}
SWAGGER=${KUBE_SWAGGER:-$SRCDIR/../shared/k8s/kubernetes_swagger_release-1.36.json}
[ -f "$SWAGGER" ] || SWAGGER=-
T=$(mktemp -d /tmp/kiln-kube.XXXXXX)
trap 'rm -rf "$T"' EXIT
if ! "$PODGEN" "$T" > "$T/podgen.err" 2>&1; then
    echo "not ok 1 - kube-podgen ran"; sed 's/^/#   /' "$T/podgen.err"; echo "1..1"; exit 1
fi
cd "$SRCDIR/tests/kube-sim" && exec "$PY" test_podgen.py "$T" "$SWAGGER"
