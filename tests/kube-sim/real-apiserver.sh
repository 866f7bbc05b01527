#!/usr/bin/env bash
# real-apiserver.sh up|down — a REAL kube-apiserver (with etcd) on loopback plus
# sim-kubelet.py as its scheduler + kubelet, for running kube-sim's tests (and
# kiln's executor) against the real thing.
#   up    starts shared/k8s/kube-up.sh with the fake node, then sim-kubelet.py on
#         the node's kubelet port; prints eval-able lines:
#           export KUBE_SERVER=... KUBE_TOKEN=... KUBE_CA=... KUBECONFIG=...
#           export KUBE_STATE_DIR=... KUBE_SIM_KIND=real
#   down  stops sim-kubelet (by its pid file), then kube-down.sh --purge
# Exits 77 (skip) when the apiserver binary, etcd or kube-up.sh is missing.
# Knobs (defaults differ from kube-up.sh's so both can run at once):
#   KUBE_STATE_DIR (/tmp/kiln-kube-real), KUBE_PORT (16444), ETCD_PORT (23792),
#   ETCD_PEER_PORT (23802), FAKE_KUBELET_PORT (10261), KUBE_APISERVER_BIN
#   (/opt/k8s/kube-apiserver), KUBE_SHARED (directory with kube-up.sh; default
#   SRCDIR/../shared/k8s).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRCDIR=${SRCDIR:-$(cd "$HERE/../.." && pwd)}
export KUBE_STATE_DIR=${KUBE_STATE_DIR:-/tmp/kiln-kube-real}
export KUBE_PORT=${KUBE_PORT:-16444} ETCD_PORT=${ETCD_PORT:-23792} ETCD_PEER_PORT=${ETCD_PEER_PORT:-23802}
export FAKE_KUBELET_PORT=${FAKE_KUBELET_PORT:-10261}
APISERVER=${KUBE_APISERVER_BIN:-/opt/k8s/kube-apiserver}
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
STATE=$KUBE_STATE_DIR
PIDF=$STATE/sim-kubelet.pid

log() { echo "real-apiserver: $*" >&2; }

shared=""
for d in "${KUBE_SHARED:-}" "$SRCDIR/../shared/k8s"; do
  if [ -n "$d" ] && [ -f "$d/kube-up.sh" ]; then shared=$d; break; fi
done

stop_kubelet() {
  [ -f "$PIDF" ] || return 0
  pid=$(cat "$PIDF")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q sim-kubelet; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$PIDF"
}

case "${1:-}" in
up)
  if [ ! -x "$APISERVER" ]; then log "no kube-apiserver at $APISERVER"; exit 77; fi
  if ! command -v "${ETCD_BIN:-etcd}" >/dev/null 2>&1; then log "no etcd"; exit 77; fi
  if [ -z "$shared" ]; then log "no kube-up.sh (set KUBE_SHARED)"; exit 77; fi
  command -v openssl >/dev/null && command -v curl >/dev/null || { log "needs openssl and curl"; exit 77; }
  mkdir -p "$STATE/logs"
  env_out=$(KUBE_FAKE_NODE=1 KUBE_APISERVER_BIN="$APISERVER" bash "$shared/kube-up.sh")
  eval "$env_out"
  stop_kubelet
  # setsid: its own session, so the caller's job control never signals it
  setsid "$PY" "$HERE/sim-kubelet.py" --kubeconfig "$KUBECONFIG" --node-name fake-node \
      --port "$FAKE_KUBELET_PORT" --cert "$STATE/pki/server.crt" --key "$STATE/pki/server.key" \
      --pidfile "$PIDF" < /dev/null >> "$STATE/logs/sim-kubelet.log" 2>&1 &
  ok=""
  for _ in $(seq 1 100); do
    if [ -f "$PIDF" ] && curl -sk -o /dev/null "https://127.0.0.1:$FAKE_KUBELET_PORT/healthz"; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || { log "sim-kubelet did not start; see $STATE/logs/sim-kubelet.log"; exit 1; }
  log "ready: sim-kubelet pid $(cat "$PIDF"), logs in $STATE/logs"
  echo "$env_out"
  echo "export KUBE_STATE_DIR=$STATE"
  echo "export KUBE_SIM_KIND=real"
  ;;
down)
  stop_kubelet
  if [ -n "$shared" ]; then bash "$shared/kube-down.sh" --purge; else rm -rf "$STATE"; fi
  ;;
*)
  echo "usage: $0 up|down" >&2; exit 2 ;;
esac
