# Parallelism, pools, max_active_tasks and priority_weight, measured by the
# tasks themselves: each task counts how many of its kind run beside it.
. "$SRCDIR/tests/lib/tap.sh"

# probe KIND: increments a counter for KIND under a lock, records the
# highest value seen, holds for a moment, decrements.
cat > "$T/probe.sh" <<'SH'
kind=$1; dir=$2
(
  flock 9
  n=$(( $(cat "$dir/$kind.now" 2>/dev/null || echo 0) + 1 ))
  echo $n > "$dir/$kind.now"
  max=$(cat "$dir/$kind.max" 2>/dev/null || echo 0)
  [ $n -gt $max ] && echo $n > "$dir/$kind.max"
) 9> "$dir/lock"
sleep 0.3
(
  flock 9
  echo $(( $(cat "$dir/$kind.now") - 1 )) > "$dir/$kind.now"
) 9> "$dir/lock"
SH

gen() { # gen NAME COUNT KIND EXTRA-YAML...
    name=$1 count=$2 kind=$3; shift 3
    { echo "dag: $name"; echo "max_active_tasks: 100"; echo "tasks:"
      i=0; while [ $i -lt "$count" ]; do
        echo "  t$i: {command: [sh, $T/probe.sh, $kind, $T/m], $*}"; i=$((i + 1)); done
    } > "$KILN_DAGS/$name.yaml"
}
mkdir -p "$T/m"

gen par 12 all
kiln dags test "$KILN_DAGS/par.yaml" --home "$T/h1" --parallelism 3 -q > /dev/null 2>&1
ok $? "12 tasks with parallelism 3 succeed"
is "$(cat "$T/m/all.max")" "3" "at most 3 tasks ran at once, and 3 did"

# A pool of 2 slots: 8 tasks in it and 4 outside, parallelism 10.
{ echo "dag: pooled"; echo "max_active_tasks: 100"; echo "tasks:"
  for i in 0 1 2 3 4 5 6 7; do echo "  p$i: {pool: db, command: [sh, $T/probe.sh, db, $T/m]}"; done
  for i in 0 1 2 3; do echo "  f$i: {command: [sh, $T/probe.sh, free, $T/m]}"; done
} > "$KILN_DAGS/pooled.yaml"
kiln dags test "$KILN_DAGS/pooled.yaml" --home "$T/h2" --parallelism 10 --pool db=2 -q > /dev/null 2>&1
ok $? "pooled run succeeds"
is "$(cat "$T/m/db.max")" "2" "the db pool's 2 slots were never exceeded"
is "$(cat "$T/m/free.max")" "4" "tasks outside the pool were not held back by it"

# pool_slots: a task taking 2 slots of a 3-slot pool runs alone with at most one 1-slot task.
{ echo "dag: slots"; echo "tasks:"
  for i in 0 1 2 3; do echo "  big$i: {pool: gpu, pool_slots: 2, command: [sh, $T/probe.sh, big, $T/m]}"; done
} > "$KILN_DAGS/slots.yaml"
kiln dags test "$KILN_DAGS/slots.yaml" --home "$T/h3" --pool gpu=3 -q > /dev/null 2>&1
ok $? "pool_slots run succeeds"
is "$(cat "$T/m/big.max")" "1" "a 2-slot task in a 3-slot pool runs one at a time"

# An undefined pool fails the task with a clear reason.
echo 'dag: nopool
tasks:
  x: {pool: nowhere, command: ["true"]}' > "$KILN_DAGS/nopool.yaml"
kiln dags test "$KILN_DAGS/nopool.yaml" --home "$T/h4" -q > /dev/null 2>&1
is "$?" "1" "a task in an undefined pool fails the run"
is "$(sqlite3 "$T/h4/kiln.db" "select reason from task_instances")" \
   "pool 'nowhere' is not defined (add it under 'pools:' in kiln.yaml)" "the reason names the pool"

# max_active_tasks of the DAG.
{ echo "dag: mat"; echo "max_active_tasks: 2"; echo "tasks:"
  for i in 0 1 2 3 4 5; do echo "  t$i: {command: [sh, $T/probe.sh, mat, $T/m]}"; done
} > "$KILN_DAGS/mat.yaml"
kiln dags test "$KILN_DAGS/mat.yaml" --home "$T/h5" --parallelism 10 -q > /dev/null 2>&1
ok $? "max_active_tasks run succeeds"
is "$(cat "$T/m/mat.max")" "2" "max_active_tasks: 2 held"

# priority_weight orders ready tasks when slots are short.
{ echo "dag: prio"; echo "tasks:"
  echo "  low: {priority_weight: 1, command: [sh, -c, 'echo low >> $T/prio']}"
  echo "  high: {priority_weight: 100, command: [sh, -c, 'echo high >> $T/prio']}"
  echo "  mid: {priority_weight: 50, command: [sh, -c, 'echo mid >> $T/prio']}"
} > "$KILN_DAGS/prio.yaml"
kiln dags test "$KILN_DAGS/prio.yaml" --home "$T/h6" --parallelism 1 -q > /dev/null 2>&1
is "$(tr '\n' ' ' < "$T/prio")" "high mid low " "with one slot, tasks run by priority_weight"

done_testing
