#!/bin/sh
# kube-sim's own protocol tests: Status errors (404/409/422), list selectors
# and paging, watch resume, bookmarks, 410 as an ERROR event, faults, the
# simulated scheduler + kubelet (tests/kube-sim/kubelet_core.py: nodes, image
# errors, memory limit, termination message, deadlines, graceful delete), then
# the lifecycle checks of test_real.py that kube_real.sh runs against a real
# kube-apiserver (tests/kube-sim/test_sim.py).
: "${SRCDIR:=.}"
PY=python3
export PYTHONDONTWRITEBYTECODE=1
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
cd "$SRCDIR/tests/kube-sim" && exec "$PY" test_sim.py
