# kill -9 of the daemon in the middle of runs, 20 times at random moments.
# Every run must complete, every task's side effect must happen exactly
# once, no try may start twice, and no result may be lost.
. "$SRCDIR/tests/lib/tap.sh"
KILLS=${KILLS:-20}
RUNS=5

# 12 tasks: a fan-out of 5, a fan-in, then a chain of 5; each sleeps a
# moment and appends one line (its side effect).  One run at a time, so the
# runs span the whole series of kills.
{ echo "dag: chaos"; echo "max_active_runs: 1"; echo "max_active_tasks: 8"; echo "tasks:"
  echo "  start: {command: [sh, -c, 'sleep 0.\$((\$\$ % 4 + 1)); echo \"\$KILN_RUN_ID start\" >> $T/effects']}"
  for i in 1 2 3 4 5; do
    echo "  fan$i: {deps: [start], command: [sh, -c, 'sleep 0.\$((\$\$ % 5 + 1)); echo \"\$KILN_RUN_ID fan$i\" >> $T/effects']}"
  done
  echo "  join: {deps: [fan1, fan2, fan3, fan4, fan5], command: [sh, -c, 'sleep 0.2; echo \"\$KILN_RUN_ID join\" >> $T/effects']}"
  prev=join
  for i in 1 2 3 4 5; do
    echo "  c$i: {deps: [$prev], command: [sh, -c, 'sleep 0.\$((\$\$ % 3 + 1)); echo \"\$KILN_RUN_ID c$i\" >> $T/effects']}"
    prev=c$i
  done
} > "$KILN_DAGS/chaos.yaml"

i=0
while [ $i -lt $RUNS ]; do kiln dags trigger chaos > /dev/null || break; i=$((i + 1)); done
is "$i" "$RUNS" "$RUNS runs queued with no daemon running"

kills=0
while [ $kills -lt "$KILLS" ]; do
    start_daemon
    # A random moment between 0.1 and 1.2 s into this daemon's life.
    sleep "0.$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 11 + 1 ))"
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
    kills=$((kills + 1))
done
diag "killed the daemon $kills times; $(sql "select count(*) from task_instances where state='success'") of $((RUNS * 12)) tasks done so far"
start_daemon
wait_for "[ \"\$(sql \"select count(*) from runs where state in ('success','failed')\")\" = $RUNS ]" 120
ok $? "all runs finished after the last restart"
is "$(sql "select group_concat(state) from runs")" "$(printf 'success,%.0s' $(seq $RUNS) | sed 's/,$//')" "every run succeeded"
is "$(sql "select count(*) from task_instances where state = 'success'")" "$((RUNS * 12))" "every task instance succeeded"
is "$(wc -l < "$T/effects" | tr -d ' ')" "$((RUNS * 12))" "exactly $((RUNS * 12)) side effects"
is "$(sort "$T/effects" | uniq -d | wc -l | tr -d ' ')" "0" "no side effect happened twice"
is "$(sql "select count(*) from tries")" "$((RUNS * 12))" "one try per task instance: none started twice"
is "$(sql "select count(*) from tries where state != 'success' or exit_code != 0")" "0" "no try lost its result"
is "$(sql "select count(*) from task_instances where try_number != 1")" "0" "every task instance finished on try 1"
recovered=$(grep -c 'recovered' "$T/daemon.log")
[ "$recovered" -ge $((KILLS * 3 / 4)) ]; ok $? "most restarts ($recovered of $((KILLS + 1))) found runs in flight to recover"
done_testing
