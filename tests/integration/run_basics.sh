# Real processes, a real SQLite file: a diamond DAG, retries that finally
# succeed, a timeout that kills a whole process group, and skips that
# propagate by trigger rule.
. "$SRCDIR/tests/lib/tap.sh"

# --- diamond: a -> (b, c) -> d; each task appends "name start end" times.
cat > "$KILN_DAGS/diamond.yaml" <<YAML
dag: diamond
tasks:
  a: {command: [sh, -c, 'echo "a \$(date +%s%N)" >> $T/order']}
  b: {deps: [a], command: [sh, -c, 'sleep 0.2; echo "b \$(date +%s%N)" >> $T/order']}
  c: {deps: [a], command: [sh, -c, 'sleep 0.2; echo "c \$(date +%s%N)" >> $T/order']}
  d: {deps: [b, c], command: [sh, -c, 'echo "d \$(date +%s%N)" >> $T/order']}
YAML
kiln dags test "$KILN_DAGS/diamond.yaml" > "$T/out" 2>&1
ok $? "diamond run succeeds (exit 0)"
is "$(cut -d' ' -f1 "$T/order" | head -1)" "a" "a runs first"
is "$(cut -d' ' -f1 "$T/order" | tail -1)" "d" "d runs last"
is "$(wc -l < "$T/order" | tr -d ' ')" "4" "each task ran exactly once"
b=$(grep '^b ' "$T/order" | cut -d' ' -f2); c=$(grep '^c ' "$T/order" | cut -d' ' -f2)
d=$(grep '^d ' "$T/order" | cut -d' ' -f2)
[ "$d" -gt "$b" ] && [ "$d" -gt "$c" ]; ok $? "d starts after both b and c end"
# b and c ran in parallel: both ended within 150 ms of each other (each sleeps 200 ms).
diff=$(( (b > c ? b - c : c - b) / 1000000 )); [ "$diff" -lt 150 ]; ok $? "b and c ran in parallel (ends ${diff} ms apart)"
H=$(sed -n 's/.*(home \(.*\)).*/\1/p' "$T/out" | head -1)
is "$(sqlite3 "$H/kiln.db" "select group_concat(state) from (select state from task_instances order by task_index)")" \
   "success,success,success,success" "every task instance is success in the database"
is "$(sqlite3 "$H/kiln.db" "select state from runs")" "success" "the run is success in the database"

# --- retries: fails twice, then succeeds; every try is kept with its exit code.
cat > "$KILN_DAGS/retry.yaml" <<YAML
dag: retry
tasks:
  flaky:
    retries: 3
    retry_delay: 200ms
    retry_exponential_backoff: true
    command: [sh, -c, 'echo "try \$KILN_TRY_NUMBER"; [ "\$KILN_TRY_NUMBER" -ge 3 ]']
YAML
kiln dags test "$KILN_DAGS/retry.yaml" --home "$T/h-retry" > "$T/out" 2>&1
ok $? "a task that fails twice then succeeds: run succeeds"
is "$(sqlite3 "$T/h-retry/kiln.db" "select group_concat(state || ':' || coalesce(exit_code,'-')) from (select * from tries order by try_number)")" \
   "failed:1,failed:1,success:0" "three tries recorded: failed, failed, success"
gap1=$(sqlite3 "$T/h-retry/kiln.db" "select (b.start_us - a.end_us)/1000 from tries a join tries b on b.try_number = a.try_number + 1 where a.try_number = 1")
gap2=$(sqlite3 "$T/h-retry/kiln.db" "select (b.start_us - a.end_us)/1000 from tries a join tries b on b.try_number = a.try_number + 1 where a.try_number = 2")
[ "$gap1" -ge 200 ] && [ "$gap2" -ge 400 ]; ok $? "backoff doubles the retry delay (${gap1} ms, then ${gap2} ms)"
is "$(cat "$T/h-retry/logs/retry/"*/flaky.2.log)" "try 2" "each try has its own log"

# --- retries exhausted: the run fails, exit status 1.
cat > "$KILN_DAGS/always_fails.yaml" <<YAML
dag: always_fails
tasks:
  bad: {retries: 1, retry_delay: 100ms, command: [sh, -c, 'echo boom >&2; exit 3']}
  after: {deps: [bad], command: [touch, $T/after-ran]}
YAML
kiln dags test "$KILN_DAGS/always_fails.yaml" --home "$T/h-fail" > "$T/out" 2>&1
is "$?" "1" "a run whose task fails for good exits 1"
grep -q 'boom' "$T/out"; ok $? "the failure shows the tail of the task's log"
is "$(sqlite3 "$T/h-fail/kiln.db" "select state || '|' || reason from task_instances where task_id='bad'")" \
   "failed|exited with code 3" "failed with the reason 'exited with code 3'"
is "$(sqlite3 "$T/h-fail/kiln.db" "select state from task_instances where task_id='after'")" \
   "upstream_failed" "its downstream is upstream_failed"
[ ! -e "$T/after-ran" ]; ok $? "the downstream task never ran"

# --- timeout: the task and its child are killed; the reason says so.
cat > "$KILN_DAGS/slow.yaml" <<YAML
dag: slow
tasks:
  slow:
    timeout: 1s
    command: [sh, -c, 'sleep 30 & echo \$! > $T/child.pid; wait']
YAML
start=$(date +%s)
kiln dags test "$KILN_DAGS/slow.yaml" --home "$T/h-slow" --kill-grace 500ms > "$T/out" 2>&1
is "$?" "1" "a timed-out run exits 1"
took=$(( $(date +%s) - start )); [ "$took" -lt 10 ]; ok $? "the timeout fired quickly (${took}s, not 30s)"
is "$(sqlite3 "$T/h-slow/kiln.db" "select reason from task_instances")" "timed out after 1s" "reason is 'timed out after 1s'"
sleep 0.2
child=$(cat "$T/child.pid")
! kill -0 "$child" 2>/dev/null; ok $? "the task's child process (pid $child) was killed with its group"

# --- skip: exit code 99 skips; skips propagate by trigger rule.
cat > "$KILN_DAGS/skips.yaml" <<YAML
dag: skips
tasks:
  check: {command: [sh, -c, 'exit 99']}
  work: {deps: [check], command: [touch, $T/work-ran]}
  always: {deps: [work], trigger_rule: all_done, command: [touch, $T/always-ran]}
  nf: {deps: [work], trigger_rule: none_failed_min_one_success, command: [touch, $T/nf-ran]}
YAML
kiln dags test "$KILN_DAGS/skips.yaml" --home "$T/h-skip" > "$T/out" 2>&1
ok $? "a run with skipped tasks succeeds"
is "$(sqlite3 "$T/h-skip/kiln.db" "select group_concat(task_id || '=' || state, ' ') from (select * from task_instances order by task_index)")" \
   "check=skipped work=skipped always=success nf=skipped" "skip propagates by each trigger rule"
[ -e "$T/always-ran" ] && [ ! -e "$T/work-ran" ] && [ ! -e "$T/nf-ran" ]; ok $? "only the all_done task ran"

# --- command not found: a clear reason, no crash.
cat > "$KILN_DAGS/missing.yaml" <<YAML
dag: missing
tasks:
  x: {command: [no-such-command-kiln, arg]}
YAML
kiln dags test "$KILN_DAGS/missing.yaml" --home "$T/h-missing" > "$T/out" 2>&1
is "$?" "1" "a missing command fails the run"
sqlite3 "$T/h-missing/kiln.db" "select reason from task_instances" | grep -q 'no-such-command-kiln'
ok $? "the reason names the missing command"

# --- environment and working folder.
mkdir -p "$KILN_DAGS/work"
cat > "$KILN_DAGS/env.yaml" <<YAML
dag: envdag
tasks:
  show:
    cwd: work
    env: {GREETING: hello}
    command: [sh, -c, 'pwd; echo "\$GREETING \$KILN_DAG_ID \$KILN_TASK_ID \$KILN_TRY_NUMBER"; echo "{\"answer\": 42}" > "\$KILN_OUTPUTS"']
YAML
kiln dags test "$KILN_DAGS/env.yaml" --home "$T/h-env" > "$T/out" 2>&1
ok $? "env/cwd run succeeds"
log=$(cat "$T/h-env/logs/envdag/"*/show.1.log)
is "$log" "$KILN_DAGS/work
hello envdag show 1" "the task ran in its cwd with its env and the KILN_* variables"
is "$(sqlite3 "$T/h-env/kiln.db" "select outputs from tries")" '{"answer": 42}' "outputs written to KILN_OUTPUTS are stored with the try"

# --- an invalid file: exit 2, file:line:col, nothing created.
printf 'dag: bad\ntasks:\n  a:\n    command: [x]\n    deps: [zz]\n' > "$KILN_DAGS/bad.yaml"
kiln dags test "$KILN_DAGS/bad.yaml" --home "$T/h-bad" > "$T/out" 2>&1
is "$?" "2" "dags test of an invalid file exits 2"
grep -q "bad.yaml:5:12: task 'a' depends on unknown task 'zz'" "$T/out"; ok $? "and names file:line:col"
[ ! -e "$T/h-bad/kiln.db" ]; ok $? "and creates no database"

done_testing
