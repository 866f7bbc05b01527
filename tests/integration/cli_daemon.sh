# The CLI beside a daemon and without one: triggers, pause, clear, mark,
# cancel, listings, the audit log, --help and exit codes.
. "$SRCDIR/tests/lib/tap.sh"

cat > "$KILN_DAGS/quick.yaml" <<YAML
dag: quick
params: {who: world}
tasks:
  hello: {command: [sh, -c, 'echo "hello \$KILN_RUN_ID" | tee -a $T/quick']}
  bye: {deps: [hello], command: [sh, -c, 'echo "bye \$KILN_RUN_ID" >> $T/quick']}
YAML
cat > "$KILN_DAGS/sleepy.yaml" <<YAML
dag: sleepy
tasks:
  nap: {command: [sh, -c, 'echo \$\$ > $T/nap.pid; exec sleep 60']}
  after: {deps: [nap], command: ["true"]}
YAML
printf 'dag: broken\ntasks:\n  a:\n    command: [echo]\n    retires: 2\n' > "$KILN_DAGS/broken.yaml"

# --- listing: the bad file is reported with file:line:col; the others load.
kiln dags list > "$T/list" 2>&1
is "$?" "1" "dags list exits 1 when a file has errors"
grep -q "^quick " "$T/list" && grep -q "^sleepy " "$T/list"; ok $? "the good DAGs are listed"
grep -q "broken.yaml:5:5: unknown key 'retires' in task 'a' (did you mean 'retries'?)" "$T/list"
ok $? "the bad file is listed with file:line:col and a hint"
kiln dags list -o json | grep -q '"error":'; ok $? "dags list -o json includes the error"

# --- no daemon: a trigger queues a run; the daemon runs it when it starts.
kiln dags trigger quick -p who=me > "$T/out"; ok $? "trigger without a daemon"
is "$(kiln runs list quick -o json | grep -c '"state": "queued"')" "1" "the run is queued"
kiln dags trigger quick -p nobody=x > /dev/null 2>"$T/err"
is "$?" "2" "an unknown param is refused with exit 2"
grep -q "has no param 'nobody'" "$T/err"; ok $? "and the message names the param"
kiln dags trigger nosuchdag > /dev/null 2>&1; is "$?" "3" "triggering an unknown DAG exits 3"

start_daemon; ok $? "daemon started"
wait_for "[ \"\$(sql \"select state from runs where dag_id='quick'\")\" = success ]" 10
ok $? "the queued run ran once the daemon started"

# --- with the daemon: a trigger is picked up within a second.
t0=$(date +%s%N)
kiln dags trigger quick --wait > "$T/out"; ok $? "trigger --wait through the daemon succeeds"
t1=$(date +%s%N)
first=$(sql "select min(t.start_us) from tries t join task_instances ti on ti.id=t.ti_pk join runs r on r.id=ti.run_pk where r.id=(select max(id) from runs)")
lat=$(( first - t0 / 1000 )); [ "$lat" -lt 1000000 ]; ok $? "the daemon started the run's first task $((lat / 1000)) ms after the trigger"
is "$(grep -c '^bye' "$T/quick")" "2" "both runs ran to the end"

# --- pause holds a new run; unpause releases it.
kiln dags pause quick > /dev/null; ok $? "pause"
kiln dags trigger quick > /dev/null
sleep 1.2
is "$(sql "select state from runs where dag_id='quick' order by id desc limit 1")" "queued" "a paused DAG's run stays queued"
kiln dags unpause quick > /dev/null
wait_for "[ \"\$(sql \"select state from runs where dag_id='quick' order by id desc limit 1\")\" = success ]" 10
ok $? "after unpause it runs"

# --- clear re-runs a task (and downstream) as try 2.
kiln tasks clear quick latest hello --downstream > /dev/null; ok $? "clear with --downstream"
wait_for "[ \"\$(sql \"select group_concat(try_number) from task_instances where run_pk=(select max(id) from runs where dag_id='quick')\")\" = '2,2' ]" 10
ok $? "both tasks ran again as try 2"
is "$(sql "select state from runs where dag_id='quick' order by id desc limit 1")" "success" "the re-opened run is success again"

# --- mark a running task failed: its process is stopped.
kiln dags trigger sleepy > /dev/null
wait_for "[ -s $T/nap.pid ]" 10
pid=$(cat "$T/nap.pid")
kill -0 "$pid"; ok $? "the long task is running (pid $pid)"
kiln tasks clear sleepy latest nap > /dev/null 2>&1; is "$?" "4" "clearing a running task is refused with exit 4"
kiln tasks mark sleepy latest nap failed > /dev/null; ok $? "mark a running task failed"
wait_for "! kill -0 $pid" 10; ok $? "its process was stopped"
wait_for "[ \"\$(sql \"select state from runs where dag_id='sleepy'\")\" = failed ]" 10
ok $? "the run ends failed"
is "$(sql "select state from task_instances where task_id='after' and run_pk=(select max(id) from runs)")" "upstream_failed" "its downstream is upstream_failed"

# --- cancel a run.
rm -f "$T/nap.pid"
kiln dags trigger sleepy > /dev/null
wait_for "[ -s $T/nap.pid ]" 10
pid=$(cat "$T/nap.pid")
kiln runs cancel sleepy latest > /dev/null; ok $? "cancel a running run"
wait_for "! kill -0 $pid" 10; ok $? "its running task was stopped"
is "$(sql "select state from runs where dag_id='sleepy' order by id desc limit 1")" "failed" "the cancelled run is failed"
is "$(sql "select state from task_instances where task_id='after' and run_pk=(select max(id) from runs)")" "skipped" "its tasks that had not started are skipped"

# --- listings and the audit log.
kiln runs list quick -o json | grep -q '"run_id"'; ok $? "runs list -o json"
kiln runs show quick latest | grep -q '^hello'; ok $? "runs show lists the task instances"
kiln tasks logs quick latest hello | grep -q '^hello'; ok $? "tasks logs prints the log"
kiln tasks show quick latest hello -o json | grep -q '"try_number": 2'; ok $? "tasks show lists every try"
kiln runs show quick no-such-run > /dev/null 2>&1; is "$?" "3" "an unknown run exits 3"
is "$(sql "select count(*) from audit_log where actor like 'cli:%' and action in ('trigger','pause','unpause','clear+downstream','mark','cancel')")" \
   "$(sql "select count(*) from audit_log")" "every action is in the audit log with its actor"
[ "$(sql "select count(*) from audit_log")" -ge 9 ]; ok $? "the audit log has every action ($(sql "select count(*) from audit_log"))"

# --- a second daemon is refused.
kiln serve > "$T/second" 2>&1; is "$?" "4" "a second daemon on the same home is refused (exit 4)"
grep -q "already running" "$T/second"; ok $? "with a clear message"

# --- a follow of a task's log ends when the task ends.
printf 'dag: talk\ntasks:\n  t: {command: [sh, -c, "for i in 1 2 3; do echo line$i; sleep 0.3; done"]}\n' > "$KILN_DAGS/talk.yaml"
kiln dags trigger talk > /dev/null
wait_for "kiln tasks logs talk latest t" 10
timeout 20 "$KILN_BIN" tasks logs talk latest t -f > "$T/follow"
is "$(tr '\n' ' ' < "$T/follow")" "line1 line2 line3 " "logs -f follows the log to the end of the task"
stop_daemon

# --- --help on every command, usage errors exit 2.
for c in "serve" "dags" "dags list" "dags show" "dags test" "dags trigger" "dags pause" "runs" "runs list" \
         "tasks" "tasks logs" "tasks clear" "tasks mark" "db" "db migrate" "version"; do
    kiln $c --help > "$T/help" 2>&1; st=$?
    [ $st -eq 0 ] && grep -q usage "$T/help"; ok $? "kiln $c --help"
done
kiln frobnicate > /dev/null 2>&1; is "$?" "2" "an unknown command exits 2"
kiln dags > /dev/null 2>&1; is "$?" "2" "a missing subcommand exits 2"
kiln --parallelism zero dags list > /dev/null 2>&1; is "$?" "2" "a bad flag value exits 2"
kiln db migrate | grep -q "schema version [0-9]"; ok $? "db migrate reports the schema version"
done_testing
