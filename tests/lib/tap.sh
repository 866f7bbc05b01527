# TAP helpers for the integration scripts (sourced).
#   ok COND_EXIT_STATUS "description"   e.g.  [ -f x ]; ok $? "x exists"
#   is GOT WANT "description"
# Each script gets a private home and DAG folder under $T, removed at exit
# together with any daemon or shepherd it started.
set -u
: "${KILN_BIN:?KILN_BIN must name the kiln binary}"
: "${SRCDIR:=.}"
T=$(mktemp -d /tmp/kiln-it.XXXXXX)
export KILN_HOME="$T/home" KILN_DAGS="$T/dags" KILN_SHEPHERD_IDLE_MS=${KILN_SHEPHERD_IDLE_MS:-1000}
# The HTTP API is off (port 0) unless a test asks for a port, so daemons of
# tests running side by side never collide on 8080.
export KILN_PORT=${KILN_PORT:-0}
mkdir -p "$KILN_HOME" "$KILN_DAGS"
_n=0
_fails=0
ok() {
    _n=$((_n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $_n - $2"; else echo "not ok $_n - $2"; _fails=$((_fails + 1)); fi
}
is() {
    _n=$((_n + 1))
    if [ "$1" = "$2" ]; then echo "ok $_n - $3"
    else echo "not ok $_n - $3"; echo "#   got:  '$1'"; echo "#   want: '$2'"; _fails=$((_fails + 1)); fi
}
diag() { echo "# $*"; }
kiln() { "$KILN_BIN" "$@"; }
sql() { sqlite3 -cmd '.timeout 10000' "$KILN_HOME/kiln.db" "$@"; }
# Waits up to $2 seconds (default 30) for the command $1 to succeed.
wait_for() {
    _t=$(( ${2:-30} * 10 ))
    while [ $_t -gt 0 ]; do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; _t=$((_t - 1)); done
    return 1
}
start_daemon() {
    "$KILN_BIN" serve >> "$T/daemon.log" 2>&1 &
    DAEMON_PID=$!
    wait_for "[ -S '$KILN_HOME/daemon.sock' ]" 10
}
stop_daemon() {
    if [ -n "${DAEMON_PID:-}" ]; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
        DAEMON_PID=
    fi
}
_cleanup() {
    stop_daemon
    # Shepherds of this test's homes, and anything they still run.
    for p in $(pgrep -f "shepherd --home $T" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    [ "${KEEP:-}" = 1 ] || rm -rf "$T"
}
trap _cleanup EXIT
done_testing() {
    echo "1..$_n"
    [ "$_fails" -eq 0 ]
}
