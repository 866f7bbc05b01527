# The HTTP API on a real daemon, over curl: /healthz, reads (JSON shapes,
# pagination, filters), logs by byte range, mutations with the token and the
# audit log, refusals (no token, wrong token, token in the URL), malformed
# bodies, path traversal on log paths, CORS closed, graceful stop.
. "$SRCDIR/tests/lib/tap.sh"

# A free port, asked of the kernel.
KILN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export KILN_PORT
BASE="http://127.0.0.1:$KILN_PORT"

cat > "$KILN_DAGS/quick.yaml" <<YAML
dag: quick
params: {who: world}
tasks:
  hello: {command: [sh, -c, 'echo "hello {{ params.who }}"; echo line2; echo "{\\"out\\": 7}" > \$KILN_OUTPUTS']}
  bye: {deps: [hello], command: [sh, -c, 'echo bye']}
YAML
cat > "$KILN_DAGS/sleepy.yaml" <<YAML
dag: sleepy
tasks:
  nap: {command: [sh, -c, 'exec sleep 60']}
  after: {deps: [nap], command: ["true"]}
YAML
printf 'dag: broken\ntasks:\n  a:\n    command: [echo]\n    retires: 2\n' > "$KILN_DAGS/broken.yaml"

# req METHOD PATH [BODY] [AUTH-HEADER]: status in $T/code, body in $T/body.
req() {
    _m=$1 _p=$2 _b=${3:-} _a=${4:-}
    set -- -s -o "$T/body" -w '%{http_code}' -X "$_m"
    [ -n "$_a" ] && set -- "$@" -H "$_a"
    [ -n "$_b" ] && set -- "$@" -H 'Content-Type: application/json' --data-binary "$_b"
    curl "$@" "$BASE$_p" > "$T/code" 2>/dev/null
    cat "$T/code"
}
# jq-like: py EXPR, evaluated with j = the parsed body.
py() { python3 -c "import json,sys; j=json.load(open('$T/body')); print($1)" 2>/dev/null; }

start_daemon; ok $? "daemon started"
wait_for "curl -sf $BASE/healthz" 10; ok $? "the API answers"
TOKEN=$(cat "$KILN_HOME/token" 2>/dev/null)
is "$(stat -c %a "$KILN_HOME/token")" "600" "the token file is created 0600"
is "${#TOKEN}" "64" "the token is 64 hex characters"
grep -q "API token" "$T/daemon.log"; ok $? "the token is printed once at first start"
AUTH="Authorization: Bearer $TOKEN"

is "$(req GET /healthz)" "200" "/healthz is 200"
is "$(py "j['status']")" "ok" "/healthz says ok"

# --- reads on loopback need no token
is "$(req GET /api/v1/dags)" "200" "GET /dags"
is "$(py "sorted(d['dag'] for d in j['dags'])")" "['quick', 'sleepy']" "the DAGs are listed"
is "$(py "sorted(j['dags'][0].keys())")" \
   "['current_version', 'dag', 'error', 'file', 'file_missing', 'last_runs', 'next_run', 'paused', 'schedule']" \
   "a DAG has its fields"
is "$(req GET /api/v1/dags/quick)" "200" "GET /dags/quick"
is "$(py "len(j['versions']), j['versions'][0]['current'], j['paused']")" "1 True False" \
   "a DAG shows its versions"
is "$(req GET /api/v1/dags/quick/versions/1/source)" "200" "GET a version's source"
grep -q "^dag: quick" "$T/body"; ok $? "the source is the file's bytes"
is "$(req GET /api/v1/dags/sleepy/versions/1/source)" "404" "a version of another DAG is 404"
is "$(req GET /api/v1/dags/nosuch)" "404" "an unknown DAG is 404"
py "j['error']" | grep -q "no DAG 'nosuch'"; ok $? "with a JSON error"
is "$(req GET /api/v1/nothing)" "404" "an unknown endpoint is 404"
is "$(req GET /elsewhere)" "404" "a path outside the API is 404"

# --- mutations need the token
is "$(req POST /api/v1/dags/quick/runs '{}')" "401" "trigger without a token is 401"
is "$(req POST /api/v1/dags/quick/runs '{}' 'Authorization: Bearer wrong')" "401" "a wrong token is 401"
is "$(req POST "/api/v1/dags/quick/runs?token=$TOKEN" '{}')" "401" "a token in the URL is not accepted"
is "$(req POST /api/v1/dags/quick/runs '{}' "Cookie: token=$TOKEN")" "401" "nor in a cookie"
is "$(req POST /api/v1/dags/quick/runs '{}' "Authorization: Basic $TOKEN")" "401" "nor as Basic auth"
is "$(sql "select count(*) from runs")" "0" "refused calls changed nothing"

is "$(req POST /api/v1/dags/quick/runs '{"params":{"who":"api"},"run_id":"r1"}' "$AUTH")" "201" \
   "trigger with params is 201"
is "$(py "j['run_id']")" "r1" "it answers with the run"
wait_for "[ \"\$(sql \"select state from runs where run_id='r1'\")\" = success ]" 15
ok $? "the triggered run succeeds"
is "$(sql "select actor||' '||action from audit_log where dag_id='quick' and action='trigger'")" \
   "api:token trigger" "the audit log names the API as the actor"

# --- malformed bodies
is "$(req POST /api/v1/dags/quick/runs '{"params":' "$AUTH")" "400" "a truncated body is 400"
is "$(req POST /api/v1/dags/quick/runs '[1,2]' "$AUTH")" "400" "a non-object body is 400"
is "$(req POST /api/v1/dags/quick/runs '{"params":[1]}' "$AUTH")" "400" "params must be an object"
is "$(req POST /api/v1/dags/quick/runs '{"bogus":1}' "$AUTH")" "400" "an unknown field is 400"
py "j['error']" | grep -q "unknown field 'bogus'"; ok $? "and named"
is "$(req POST /api/v1/dags/quick/runs '{"params":{"nobody":1}}' "$AUTH")" "400" "an unknown param is 400"
is "$(req POST /api/v1/dags/quick/runs '{"run_id":"../../x"}' "$AUTH")" "400" "a run id with slashes is 400"
is "$(req POST /api/v1/dags/nosuch/runs '{}' "$AUTH")" "404" "triggering an unknown DAG is 404"
is "$(req DELETE /api/v1/dags/quick "" "$AUTH")" "405" "an unknown method is 405"
head -c 1100000 /dev/zero | tr '\0' 'a' > "$T/big"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" --data-binary @"$T/big" "$BASE/api/v1/dags/quick/runs")
is "$code" "413" "a body over 1 MiB is 413"
is "$(req POST /api/v1/dags/quick/runs '{"run_id":"r1"}' "$AUTH")" "400" "a duplicate run id is refused"

# --- runs: pagination and filters
for i in 2 3 4 5; do req POST /api/v1/dags/quick/runs "{\"run_id\":\"r$i\"}" "$AUTH" > /dev/null; done
wait_for "[ \"\$(sql \"select count(*) from runs where state='success'\")\" = 5 ]" 20
ok $? "five runs succeed"
is "$(req GET '/api/v1/dags/quick/runs?limit=2')" "200" "GET runs, page 1"
is "$(py "[r['run_id'] for r in j['runs']], j['next_before']")" "['r5', 'r4'] 4" "newest first, with a cursor"
is "$(req GET '/api/v1/dags/quick/runs?limit=2&before=4')" "200" "page 2"
is "$(py "[r['run_id'] for r in j['runs']]")" "['r3', 'r2']" "the next runs"
req GET '/api/v1/dags/quick/runs?limit=2&before=2' > /dev/null
is "$(py "[r['run_id'] for r in j['runs']], j['next_before']")" "['r1'] None" "the last page has no cursor"
req GET '/api/v1/dags/quick/runs?state=failed' > /dev/null
is "$(py "len(j['runs'])")" "0" "filter by state"
is "$(req GET '/api/v1/dags/quick/runs?state=bogus')" "400" "a bad state is 400"
is "$(req GET '/api/v1/dags/quick/runs?limit=-1')" "400" "a bad limit is 400"
is "$(req GET '/api/v1/dags/quick/runs?limit=abc')" "400" "a non-number limit is 400"

# --- a run with its task instances and tries
is "$(req GET /api/v1/dags/quick/runs/r1)" "200" "GET a run"
is "$(py "j['state'], j['params'], [t['task'] for t in j['tasks']]")" \
   "success {'who': 'api'} ['hello', 'bye']" "the run has its params and tasks"
is "$(py "j['tasks'][0]['tries'][0]['exit_code'], j['tasks'][0]['tries'][0]['outputs']")" \
   "0 {'out': 7}" "tries carry exit codes and outputs"
is "$(req GET /api/v1/dags/quick/runs/latest)" "200" "'latest' selects a run"
is "$(req GET /api/v1/dags/quick/runs/nosuch)" "404" "an unknown run is 404"
is "$(req GET /api/v1/dags/quick/runs/r1/tasks/hello)" "200" "GET a task instance"
is "$(py "j['task'], j['state'], len(j['tries'])")" "hello success 1" "with its tries"
is "$(req GET /api/v1/dags/quick/runs/r1/tasks/nosuch)" "404" "an unknown task is 404"

# --- logs of a try, by byte range
L=/api/v1/dags/quick/runs/r1/tasks/hello/tries/1/log
is "$(req GET $L)" "200" "GET a try's log"
is "$(cat "$T/body")" "hello api
line2" "the whole log"
is "$(req GET "$L?offset=6&limit=3")" "206" "offset and limit give 206"
is "$(cat "$T/body")" "api" "the bytes asked for"
code=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -H 'Range: bytes=0-4' "$BASE$L")
is "$code" "206" "a Range header gives 206"
is "$(cat "$T/body")" "hello" "the range's bytes"
grep -qi '^content-range: bytes 0-4/16' "$T/hdr"; ok $? "with Content-Range"
is "$(req GET "$L?offset=1000")" "416" "an offset past the end is 416"
is "$(req GET "$L?offset=x")" "400" "a bad offset is 400"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=junk' "$BASE$L")
is "$code" "400" "a malformed Range is 400"
is "$(req GET /api/v1/dags/quick/runs/r1/tasks/hello/tries/9/log)" "404" "an unknown try is 404"
# Path traversal: the path comes from the tries table, never the URL.
for p in "/api/v1/dags/quick/runs/r1/tasks/..%2F..%2F..%2Fetc%2Fpasswd/tries/1/log" \
         "/api/v1/dags/quick/runs/r1/tasks/hello/tries/..%2F..%2Fetc%2Fpasswd/log" \
         "/api/v1/dags/..%2F..%2Fetc/runs/r1/tasks/hello/tries/1/log" \
         "/api/v1/dags/quick/runs/r1/tasks/%2e%2e/tries/1/log"; do
    code=$(curl -s --path-as-is -o "$T/body" -w '%{http_code}' "$BASE$p")
    case "$code" in 400|404) r=0 ;; *) r=1 ;; esac
    grep -q "root:" "$T/body" && r=1
    ok $r "traversal attempt is refused ($code): $p"
done
code=$(curl -s --path-as-is -o "$T/body" -w '%{http_code}' "$BASE/api/v1/dags/quick/runs/r1/tasks/hello/tries/1/../../../../../../../../etc/passwd")
grep -q "root:" "$T/body"; is "$?" "1" "dot segments never reach a file ($code)"

# --- pause, mark, clear, cancel
is "$(req POST /api/v1/dags/quick/pause '' "$AUTH")" "200" "pause"
req GET /api/v1/dags/quick > /dev/null
is "$(py "j['paused']")" "True" "the DAG is paused"
is "$(req POST /api/v1/dags/quick/unpause '' "$AUTH")" "200" "unpause"
is "$(req POST /api/v1/dags/quick/runs/r1/tasks/bye/mark '{"state":"failed"}' "$AUTH")" "200" "mark a task failed"
is "$(sql "select ti.state from task_instances ti join runs r on r.id=ti.run_pk where r.run_id='r1' and ti.task_id='bye'")" \
   "failed" "the task is failed"
is "$(req POST /api/v1/dags/quick/runs/r1/tasks/bye/mark '{"state":"bogus"}' "$AUTH")" "400" "a bad state is 400"
is "$(req POST /api/v1/dags/quick/runs/r1/clear '{"tasks":["hello"],"downstream":true}' "$AUTH")" "200" \
   "clear a task and its downstream"
wait_for "[ \"\$(sql \"select state from runs where run_id='r1'\")\" = success ]" 15
ok $? "the cleared run runs again and succeeds"
is "$(sql "select try_number from task_instances ti join runs r on r.id=ti.run_pk where r.run_id='r1' and ti.task_id='hello'")" \
   "2" "the cleared task has a second try"
is "$(req POST /api/v1/dags/quick/runs/r1/clear '{"tasks":"hello"}' "$AUTH")" "400" "clear needs an array"
is "$(req POST /api/v1/dags/sleepy/runs '{"run_id":"s1"}' "$AUTH")" "201" "trigger a long run"
wait_for "[ \"\$(sql \"select ti.state from task_instances ti join runs r on r.id=ti.run_pk where r.run_id='s1' and ti.task_id='nap'\")\" = running ]" 15
is "$(req POST /api/v1/dags/sleepy/runs/s1/cancel '' "$AUTH")" "200" "cancel a run"
wait_for "[ \"\$(sql \"select state from runs where run_id='s1'\")\" = failed ]" 15
ok $? "the cancelled run ends failed"
is "$(sql "select count(*) from audit_log where actor='api:token'")" "11" "every applied API call is audited (refused ones never apply)"

# --- CORS stays closed
curl -s -D "$T/hdr" -o /dev/null -H 'Origin: http://evil.example' "$BASE/api/v1/dags"
grep -qi '^access-control-' "$T/hdr"; is "$?" "1" "no CORS headers are sent"
code=$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS -H 'Origin: http://evil.example' \
       -H 'Access-Control-Request-Method: POST' "$BASE/api/v1/dags/quick/runs")
is "$code" "401" "a preflight gets no grant"

# --- the UI's endpoints: events (SSE), grid, graph, a log's live tail, /metrics, files
curl -s -N --max-time 20 "$BASE/api/v1/events" > "$T/events" 2>/dev/null &
EV_PID=$!
sleep 0.3
is "$(req POST /api/v1/dags/quick/runs '{"params":{"who":"sse"},"run_id":"e1"}' "$AUTH")" "201" \
   "trigger a run while an event stream is open"
wait_for "grep -q '\"run_id\":\"e1\".*\"state\":\"success\"' '$T/events'" 15
ok $? "the stream carries the run's state changes"
grep -q '^event: task' "$T/events" && grep -q '"task":"hello".*"state":"running"' "$T/events"
ok $? "and its tasks' (event: task, JSON data)"
curl -s -D "$T/hdr" -o /dev/null --max-time 1 "$BASE/api/v1/events"
grep -qi '^content-type: text/event-stream' "$T/hdr"; ok $? "events are text/event-stream"
# gzip when asked for, the same bytes once inflated; events never compressed
curl -s -D "$T/hdr" -H 'Accept-Encoding: gzip' "$BASE/api/v1/dags/quick/runs?limit=500" > "$T/gz"
curl -s "$BASE/api/v1/dags/quick/runs?limit=500" > "$T/plain"
grep -qi '^content-encoding: gzip' "$T/hdr" && gunzip -c "$T/gz" | cmp -s - "$T/plain"
ok $? "JSON is gzipped for a client that accepts it, and inflates to the plain answer"
curl -s -D "$T/hdr" -o /dev/null "$BASE/api/v1/dags/quick/runs?limit=500"
! grep -qi '^content-encoding' "$T/hdr"; ok $? "and sent plain to one that does not"
curl -s -D "$T/hdr" -H 'Accept-Encoding: gzip' -o "$T/gz" "$BASE/ui/app.js"
grep -qi '^content-encoding: gzip' "$T/hdr" && [ "$(gunzip -c "$T/gz" | wc -c)" -gt "$(wc -c < "$T/gz")" ]
ok $? "the UI's script is gzipped too"
curl -s -D "$T/hdr" -o /dev/null --max-time 1 -H 'Accept-Encoding: gzip' "$BASE/api/v1/events"
! grep -qi '^content-encoding' "$T/hdr"; ok $? "an event stream is never gzipped (events arrive as they happen)"
is "$(req GET '/api/v1/dags/quick/grid?runs=25')" "200" "GET the grid"
is "$(py "j['tasks'], len(j['runs']), j['runs'][-1]['run_id'], j['runs'][-1]['cells']")" \
   "['hello', 'bye'] $(sql "select count(*) from runs where dag_id='quick' and id > (select max(id) from runs where dag_id='quick') - 25") e1 $(py "chr(97+j['states'].index('success'))*2")" \
   "the grid has runs oldest first and one state code per task"
is "$(req GET '/api/v1/dags/quick/grid?runs=0')" "400" "the grid's runs are checked"
is "$(req GET /api/v1/dags/quick/graph)" "200" "GET the graph"
is "$(py "[(t['id'], t['deps']) for t in j['tasks']], [(p['key'], p['default']) for p in j['params']]")" \
   "[('hello', []), ('bye', ['hello'])] [('who', 'world')]" "it has the tasks, their deps and the params"
curl -s -N --max-time 2 "$BASE/api/v1/dags/quick/runs/e1/tasks/hello/tries/1/log?follow=1" > "$T/tail" 2>/dev/null
grep -q '^event: log' "$T/tail" && grep -q 'hello sse' "$T/tail"; ok $? "a log's tail comes as events"
is "$(req GET '/api/v1/dags/quick/runs/e1/tasks/hello/tries/9/log?follow=1')" "404" \
   "a tail of a missing try is 404"
is "$(req GET /metrics)" "200" "GET /metrics"
for m in 'kiln_runs{state="success"}' 'kiln_task_instances{state="success"}' kiln_loop_lag_seconds \
         'kiln_task_duration_seconds_bucket{le="+Inf"}' kiln_queue_depth kiln_executor_errors_total; do
    grep -q "^$m " "$T/body"; ok $? "/metrics has $m"
done
is "$(grep '^kiln_runs{state="success"}' "$T/body" | cut -d' ' -f2)" \
   "$(sql "select count(*) from runs where state='success'")" "/metrics counts runs by state"
is "$(req GET /)" "200" "GET / serves the UI"
grep -q '<script src="/ui/app.js">' "$T/body"; ok $? "the page loads app.js"
curl -s -D "$T/hdr" -o /dev/null "$BASE/ui/app.js"
grep -qi '^content-type: text/javascript' "$T/hdr"; ok $? "app.js is text/javascript"
is "$(req GET /ui/nosuch.js)" "404" "an unknown UI file is 404"
# A stop with an event stream open still ends at once.
curl -s -N --max-time 30 "$BASE/api/v1/events" > /dev/null 2>&1 &
EV2_PID=$!
sleep 0.3
# --- graceful stop; port 0 disables HTTP; a non-loopback bind needs the token for reads
t0=$(date +%s)
stop_daemon
is "$(( $(date +%s) - t0 < 5 ))" "1" "a stop does not wait for open event streams"
wait "$EV2_PID" 2>/dev/null; wait "$EV_PID" 2>/dev/null
curl -s "$BASE/healthz" > /dev/null 2>&1; is "$?" "7" "the port is closed after a stop"
P=$KILN_PORT; KILN_PORT=0; start_daemon; ok $? "a daemon with port 0 starts"
curl -s "$BASE/healthz" > /dev/null 2>&1; is "$?" "7" "and serves no HTTP"
stop_daemon
is "$(grep -c 'API token' "$T/daemon.log")" "1" "the token is printed once only"
KILN_PORT=$P; export KILN_BIND=0.0.0.0; start_daemon; ok $? "a daemon bound to 0.0.0.0"
wait_for "curl -sf $BASE/healthz" 10
is "$(req GET /api/v1/dags)" "401" "reads need the token off loopback"
is "$(req GET /api/v1/dags "" "$AUTH")" "200" "and work with it"
stop_daemon
done_testing
