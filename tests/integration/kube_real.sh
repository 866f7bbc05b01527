#!/bin/sh
# The pod lifecycle checks of tests/kube-sim/test_real.py (create -> Running ->
# Succeeded/Failed with exit codes, logs through pods/NAME/log, termination
# message, OOMKilled, unpullable and invalid images, Unschedulable, deadline,
# graceful delete) against a REAL kube-apiserver: the local one started by
# tests/kube-sim/real-apiserver.sh (kube-up.sh + sim-kubelet.py), or any cluster
# named by KUBE_E2E_KUBECONFIG (not KUBECONFIG: a developer's everyday cluster
# must never get test pods by accident).  Without an apiserver: one SKIP.
# The local one gets its own state directory and free ports, so runs side by
# side do not meet.
: "${SRCDIR:=.}"
PY=python3
export PYTHONDONTWRITEBYTECODE=1
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
E2E=$(cd "$SRCDIR" && pwd)/tests/kube-e2e/e2e.py
cd "$SRCDIR/tests/kube-sim" || exit 1
if [ -n "${KUBE_E2E_KUBECONFIG:-}" ]; then
    KUBECONFIG=$KUBE_E2E_KUBECONFIG KUBE_SIM_KIND=cluster exec "$PY" test_real.py
fi
unset KUBECONFIG
KUBE_STATE_DIR=$(mktemp -d /tmp/kiln-kube-real.XXXXXX)
# four free loopback ports: apiserver, etcd client, etcd peer, kubelet
set -- $("$PY" -c 'import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
export KUBE_STATE_DIR KUBE_PORT=$1 ETCD_PORT=$2 ETCD_PEER_PORT=$3 FAKE_KUBELET_PORT=$4
log=$KUBE_STATE_DIR.up.log
env=$(bash ./real-apiserver.sh up 2>"$log")
rc=$?
if [ "$rc" -eq 77 ]; then
    echo "ok 1 # SKIP no kube-apiserver ($(tail -1 "$log"))"
    echo "1..1"
    rm -rf "$log" "$KUBE_STATE_DIR"
    exit 0
fi
if [ "$rc" -ne 0 ]; then
    echo "not ok 1 - real-apiserver.sh up failed (exit $rc)"
    sed 's/^/#   /' "$log"
    echo "1..1"
    rm -f "$log"
    bash ./real-apiserver.sh down >/dev/null 2>&1
    exit 1
fi
rm -f "$log"
eval "$env"
"$PY" test_real.py
rc=$?
# kiln's executor end to end, the same suite as kube_e2e.sh runs on kube-sim
# (KILN_BIN is absolute: dev.sh and make check pass it so).
"$PY" "$E2E" || rc=1
bash ./real-apiserver.sh down >/dev/null 2>&1
exit "$rc"
