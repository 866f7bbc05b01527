#!/bin/sh
# The Kubernetes executor end to end (tests/kube-e2e/e2e.py): against
# tests/kube-sim by default, or unchanged against the cluster KUBECONFIG
# names (the real kube-apiserver of tests/kube-sim/real-apiserver.sh, or any
# cluster; set E2E_IMAGE to an image with a POSIX shell).
: "${SRCDIR:=.}"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
[ -n "${KUBE_E2E_KUBECONFIG:-}" ] && export KUBECONFIG="$KUBE_E2E_KUBECONFIG"
[ -z "${KUBE_E2E_KUBECONFIG:-}" ] && unset KUBECONFIG
exec "$PY" "$SRCDIR/tests/kube-e2e/e2e.py"
