# The API's read path (webui/reads.c): reads answered on reader threads,
# kept per generation, ETag / If-None-Match, read-your-writes after a POST,
# consistent answers while a DAG runs, clients that go away before their read
# is done, and a stop with reads under way.
. "$SRCDIR/tests/lib/tap.sh"

KILN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export KILN_PORT
BASE="http://127.0.0.1:$KILN_PORT"
PY=/usr/bin/python3

cat > "$KILN_DAGS/quick.yaml" <<YAML
dag: quick
tasks:
  a: {command: ["true"]}
YAML
# A chain of 150 tasks: at any instant a consistent answer shows a prefix in
# success, then at most one task on its way, then the rest not started.
$PY - "$KILN_DAGS/chain.yaml" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("dag: chain\ntasks:\n")
    for i in range(150):
        dep = "" if i == 0 else ", deps: [t%02d]" % (i - 1)
        f.write("  t%02d: {command: [\"true\"]%s}\n" % (i, dep))
EOF
# A wide DAG: a run of it makes reads slow enough to leave during one.
$PY - "$KILN_DAGS/wide.yaml" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("dag: wide\ntasks:\n")
    for i in range(1500):
        f.write("  w%04d: {command: [\"true\"]}\n" % i)
EOF

start_daemon; ok $? "daemon started"
wait_for "curl -sf $BASE/healthz" 10; ok $? "the API answers"
AUTH="Authorization: Bearer $(cat "$KILN_HOME/token")"
is "$(curl -s "$BASE/api/v1/dags" | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["dags"]))')" \
   "3" "the three DAGs are loaded"
# Background curls are waited for by pid: a bare `wait` would wait for the daemon.
PIDS=
bg() { "$@" & PIDS="$PIDS $!"; }
wait_bg() { for p in $PIDS; do wait "$p"; done; PIDS=; }
metric() { curl -s "$BASE/metrics" | awk -v k="kiln_api_reads_total{answer=\"$1\"}" '$1 == k { print $2 }'; }

# --- ETag and 304
curl -s -D "$T/h1" -o "$T/b1" "$BASE/api/v1/dags/quick"
etag=$(awk 'tolower($1) == "etag:" { print $2 }' "$T/h1" | tr -d '\r')
[ -n "$etag" ]; ok $? "a read has an ETag"
is "$(curl -s -o "$T/b2" -w '%{http_code}' -H "If-None-Match: $etag" "$BASE/api/v1/dags/quick")" \
   "304" "If-None-Match with that ETag is 304"
is "$(cat "$T/b2" 2>/dev/null | wc -c | tr -d ' ')" "0" "a 304 has no body"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "other"' "$BASE/api/v1/dags/quick")" \
   "200" "another ETag gets the answer"
is "$(curl -s -o /dev/null -w '%{http_code}' -I "$BASE/api/v1/dags/quick")" "200" "HEAD of a read is 200"

# --- read-your-writes: each GET right after a POST's answer sees its run
bad=0
for i in 1 2 3 4 5 6 7 8; do
    curl -s -o /dev/null -X POST -H "$AUTH" -d "{\"run_id\":\"ryw$i\"}" "$BASE/api/v1/dags/quick/runs"
    curl -s "$BASE/api/v1/dags/quick/runs?limit=1" | grep -q "\"run_id\":\"ryw$i\"" || bad=$((bad + 1))
done
is "$bad" "0" "a GET after a POST's answer sees the triggered run (8 of 8)"
is "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$BASE/api/v1/dags/quick")" \
   "200" "after a change the old ETag gets the new answer"

# --- one read per generation: 20 equal GETs of a quiet daemon cost at most one read
wait_for "[ \"\$(sql \"select count(*) from runs where state in ('queued','running')\")\" = 0 ]" 30
curl -s -o /dev/null "$BASE/api/v1/dags/quick/grid"
c0=$(metric computed)
i=0; while [ $i -lt 20 ]; do bg curl -s -o /dev/null "$BASE/api/v1/dags/quick/grid"; i=$((i + 1)); done
wait_bg
c1=$(metric computed)
is "$((c1 - c0 <= 1))" "1" "20 equal reads of an unchanged store ran at most one read ($((c1 - c0)))"
[ "$(metric kept)" -ge 19 ]; ok $? "the others were answered from the kept answer"

# --- answers while a DAG runs are whole and consistent
curl -s -o /dev/null -X POST -H "$AUTH" -d '{"run_id":"c1"}' "$BASE/api/v1/dags/chain/runs"
mkdir -p "$T/snap"
n=0
while [ $n -lt 200 ]; do
    bg curl -s -o "$T/snap/run.$n" "$BASE/api/v1/dags/chain/runs/c1"
    bg curl -s -o "$T/snap/grid.$n" "$BASE/api/v1/dags/chain/grid?runs=1"
    n=$((n + 1))
    [ $((n % 10)) = 0 ] && wait_bg
    [ "$(sql "select state from runs where run_id='c1'")" = success ] && break
done
wait_bg
$PY - "$T/snap" > "$T/check" 2>&1 <<'EOF'
import json, os, sys
d = sys.argv[1]
runs = grids = mid = 0
for f in sorted(os.listdir(d)):
    j = json.load(open(os.path.join(d, f)))
    if f.startswith("run."):
        states = [t["state"] for t in j["tasks"]]
        runs += 1
    else:
        assert len(j["runs"]) == 1 and len(j["runs"][0]["cells"]) == len(j["tasks"]), f
        states = [j["states"][ord(c) - ord("a")] for c in j["runs"][0]["cells"]]
        grids += 1
    assert len(states) == 150, (f, len(states))
    k = 0
    while k < 150 and states[k] == "success":
        k += 1
    # after the success prefix: at most one task started, the rest not.
    mid += 0 < k < 150
    rest = states[k + 1:]
    assert all(s in ("none", "scheduled") for s in rest), (f, states)
    if f.startswith("run.") and j["state"] == "success":
        assert k == 150, (f, states)
print(runs, grids, mid)
assert mid > 0, "no answer was taken while the run was half-way"
EOF
ok $? "every answer during the run parses and shows a consistent chain"
diag "answers checked: $(cat "$T/check")"
wait_for "[ \"\$(sql \"select state from runs where run_id='c1'\")\" = success ]" 60
is "$(curl -s "$BASE/api/v1/dags/chain/runs/c1" | $PY -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], sum(t["state"] == "success" for t in j["tasks"]))')" \
   "success 150" "after the run, a read shows it whole"

# --- clients that leave before their read is done
is "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "$AUTH" -d '{"run_id":"w1"}' \
       "$BASE/api/v1/dags/wide/runs")" "201" "a run of 1,500 tasks is triggered"
wait_for "[ \"\$(sql \"select state from runs where run_id='w1'\")\" = success ]" 60
ok $? "and succeeds"
$PY - "$KILN_PORT" <<'EOF'
import socket, sys
port = int(sys.argv[1])
paths = ["/api/v1/dags/wide/runs/w1", "/api/v1/dags/wide/grid?runs=%d", "/api/v1/dags"]
for i in range(150):
    s = socket.create_connection(("127.0.0.1", port))
    p = paths[i % 3]
    if "%d" in p:
        p = p % (1 + i % 7)   # a new key each time: a real read, not a kept answer
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p).encode())
    # close at once, with RST for some: the read is still running
    if i % 2:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
EOF
sleep 1
kill -0 "$DAEMON_PID" 2>/dev/null; ok $? "the daemon lives on after 60 clients left mid-read"
is "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/v1/dags/wide/runs/w1")" "200" \
   "and answers the same read afterwards"

# --- a stop with reads under way ends cleanly
i=0; while [ $i -lt 10 ]; do bg curl -s -o /dev/null "$BASE/api/v1/dags/wide/grid?runs=$((i + 10))"; i=$((i + 1)); done
sleep 0.05
t0=$(date +%s)
stop_daemon
is "$(( $(date +%s) - t0 < 10 ))" "1" "a stop with reads under way ends"
wait_bg
grep -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/daemon.log" > "$T/san" 2>&1
is "$(wc -l < "$T/san" | tr -d ' ')" "0" "no sanitizer report in the daemon's log"

done_testing
