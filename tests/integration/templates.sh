# Templates and typed params: the argv and env a task actually received,
# params validated at trigger time, defaults and enums, outputs flowing from
# an upstream task into a downstream argv, and a missing output failing the
# task before it runs.
. "$SRCDIR/tests/lib/tap.sh"

cat > "$KILN_DAGS/tpl.yaml" <<YAML
dag: tpl
params:
  lr: {type: number, default: 0.1}
  epochs: 20
  mode: {type: enum, values: [fast, full], default: fast}
  dry: {type: boolean, default: false}
  tag: {type: string}
tasks:
  args:
    command: [sh, -c, 'printf "%s\n" "\$@" > $T/argv', sh, '{{ ds }}', '{{ ds_nodash }}',
              '{{ run_id }}', '{{ dag.id }}', '{{ task.id }}', '{{ try_number }}',
              '{{ params.lr }}', '{{params.epochs}}', '{{ params.mode }}', '{{ params.dry }}',
              'tag={{ params.tag }}', '{{ ts }}', '{{ logical_date }}',
              '{{ data_interval_start }}', '{{ data_interval_end }}']
    env: {RUN: 'run {{ run_id }}', LR: '{{ params.lr }}'}
  envs:
    command: [sh, -c, 'echo "\$RUN|\$LR" > $T/env']
    env: {RUN: 'run {{ run_id }}', LR: '{{ params.lr }}'}
  train:
    command: [sh, -c, 'echo "{\"acc\": 0.93, \"model\": \"m v1.bin\"}" > "\$KILN_OUTPUTS"']
  deploy:
    deps: [train]
    command: [sh, -c, 'printf "%s\n" "\$@" > $T/deploy', sh, '{{ tasks.train.outputs.model }}',
              'acc={{ tasks.train.outputs.acc }}']
  report:
    deps: [deploy]
    retries: 1
    retry_delay: 100ms
    command: [sh, -c, 'touch $T/report-ran', sh, '{{ tasks.train.outputs.f1 }}']
YAML

start_daemon; ok $? "daemon started"

# --- params validated at trigger time (exit 2, a clear message, no run).
kiln dags trigger tpl -p tag=a -p lr=fast > /dev/null 2>"$T/err"
is "$?" "2" "a number param given a word is refused with exit 2"
grep -q "param 'lr' must be a number, got 'fast'" "$T/err"; ok $? "and the message says why"
kiln dags trigger tpl -p tag=a -p mode=slow > /dev/null 2>"$T/err"
is "$?" "2" "an enum param given another value is refused"
grep -q "param 'mode' must be one of fast, full, got 'slow'" "$T/err"; ok $? "and the values are listed"
kiln dags trigger tpl -p tag=a -p epochs=2.5 > /dev/null 2>"$T/err"
is "$?" "2" "an integer param given 2.5 is refused"
grep -q "param 'epochs' must be an integer, got '2.5'" "$T/err"; ok $? "with its message"
kiln dags trigger tpl -p tag=a -p dry=maybe > /dev/null 2>"$T/err"
grep -q "param 'dry' must be true or false, got 'maybe'" "$T/err"; ok $? "a boolean param is checked"
kiln dags trigger tpl > /dev/null 2>"$T/err"
is "$?" "2" "a param without a default must be given"
grep -q "param 'tag' is required" "$T/err"; ok $? "and the message names it"
is "$(sql "select count(*) from runs")" "0" "no run was created by a refused trigger"

# --- a run: argv and env rendered, defaults merged, outputs flow downstream.
kiln dags trigger tpl -p tag=x -p epochs=3 -p mode=full --run-id r1 --wait > "$T/out" 2>&1
is "$?" "1" "the run fails (its report task has a missing output)"
created=$(sql "select created_us from runs where run_id='r1'")
ds=$(date -u -d "@$((created / 1000000))" +%Y-%m-%d)
ts=$(date -u -d "@$((created / 1000000))" +%Y-%m-%dT%H:%M:%S+00:00)
nodash=$(echo "$ds" | tr -d -)
is "$(cat "$T/argv" 2>/dev/null | tr '\n' ' ')" \
   "$ds $nodash r1 tpl args 1 0.1 3 full false tag=x $ts $ts $ts $ts " \
   "the argv the process received has every template rendered"
is "$(cat "$T/env" 2>/dev/null)" "run r1|0.1" "env values are rendered"
is "$(sql "select params from runs where run_id='r1'")" \
   '{"lr":0.1,"epochs":3,"mode":"full","dry":false,"tag":"x"}' \
   "the run stores its params, typed, with defaults merged"
is "$(cat "$T/deploy" 2>/dev/null | tr '\n' '|')" "m v1.bin|acc=0.93|" \
   "an upstream task's outputs reach the downstream argv"
is "$(sql "select state || '|' || try_number || '|' || reason from task_instances where task_id='report'")" \
   "failed|2|template {{ tasks.train.outputs.f1 }}: task 'train' wrote no output 'f1'" \
   "a missing output fails the task with the reason, retries included"
[ ! -e "$T/report-ran" ]; ok $? "and the process was never started"
is "$(sql "select group_concat(t.state, ',') from tries t join task_instances ti on ti.id = t.ti_pk join runs r on r.id = ti.run_pk where ti.task_id = 'report' and r.run_id = 'r1'")" \
   "failed,failed" "each try of it is recorded as failed"

# --- a second run with defaults only where none was given.
kiln dags trigger tpl -p tag=y --run-id r2 --wait > /dev/null 2>&1
is "$(sed -n '7,10p' "$T/argv" | tr '\n' ' ')" "0.1 20 fast false " "defaults apply when no value is given"

# --- load time: an unknown name is an error with file:line:col.
cat > "$T/bad.yaml" <<YAML
dag: bad
params: {lr: 0.1}
tasks:
  a: {command: [echo, '{{ paramz.lr }}']}
YAML
kiln dags test "$T/bad.yaml" --home "$T/h-bad" > "$T/out" 2>&1
is "$?" "2" "dags test of a file with an unknown template name exits 2"
grep -q "bad.yaml:4:23: task 'a': unknown template name 'paramz.lr' (did you mean 'params.lr'?)" "$T/out"
ok $? "and names file:line:col with a hint"

# --- dags test takes params too.
cat > "$T/p.yaml" <<YAML
dag: p
params: {n: {type: integer}}
tasks:
  a: {command: [sh, -c, 'echo "\$1" > $T/p-out', sh, 'n={{ params.n }}']}
YAML
kiln dags test "$T/p.yaml" --home "$T/h-p" -q -p n=x > "$T/out" 2>&1
is "$?" "2" "dags test -p checks the param's type"
kiln dags test "$T/p.yaml" --home "$T/h-p" -q -p n=7 > "$T/out" 2>&1
ok $? "dags test -p n=7 succeeds"
is "$(cat "$T/p-out" 2>/dev/null)" "n=7" "and the task sees the value"

stop_daemon
done_testing
