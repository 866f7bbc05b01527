# Settings: flags over KILN_* environment over kiln.yaml, and clear errors
# for a bad settings file.
. "$SRCDIR/tests/lib/tap.sh"
cd "$T"
mkdir -p m
cat > probe.sh <<SH
cd $T
( flock 9; n=\$(( \$(cat m/now 2>/dev/null || echo 0) + 1 )); echo \$n > m/now
  [ \$n -gt "\$(cat m/max 2>/dev/null || echo 0)" ] && echo \$n > m/max ) 9> m/lock
sleep 0.2
( flock 9; echo \$(( \$(cat m/now) - 1 )) > m/now ) 9> m/lock
SH
{ echo "dag: wide"; echo "max_active_tasks: 50"; echo "tasks:"
  for i in 1 2 3 4 5 6 7 8; do echo "  t$i: {pool: small, command: [sh, $T/probe.sh]}"; done
} > "$KILN_DAGS/wide.yaml"
unset KILN_HOME KILN_DAGS

printf 'parallelism: 4\npools:\n  small: 3\n' > kiln.yaml
"$KILN_BIN" dags test dags/wide.yaml -q > out 2>&1; ok $? "kiln.yaml in the working folder is read"
is "$(cat m/max)" "3" "its pool of 3 slots is honoured"
rm -f m/max
KILN_PARALLELISM=2 "$KILN_BIN" dags test dags/wide.yaml -q > out 2>&1
is "$(cat m/max)" "2" "KILN_PARALLELISM=2 overrides the file's parallelism: 4"
rm -f m/max
KILN_PARALLELISM=2 "$KILN_BIN" dags test dags/wide.yaml -q --parallelism 1 > out 2>&1
is "$(cat m/max)" "1" "--parallelism 1 overrides the environment"

printf 'parallelism: 4\nparalelism: 3\n' > bad.yaml
"$KILN_BIN" --config bad.yaml dags list > out 2>&1; is "$?" "2" "an unknown setting exits 2"
grep -q "bad.yaml:2:1: unknown setting 'paralelism' (did you mean 'parallelism'?)" out
ok $? "and names file:line:col with a hint"
printf 'pools:\n  small: lots\n' > bad2.yaml
"$KILN_BIN" --config bad2.yaml dags list > out 2>&1; is "$?" "2" "a bad pool size exits 2"
grep -q "bad2.yaml:2:10: pool 'small': slots must be a positive integer, got 'lots'" out
ok $? "and says what was expected where"
KILN_PARALLELISM=many "$KILN_BIN" dags list > out 2>&1; is "$?" "2" "a bad environment value exits 2"
grep -q "parallelism must be a positive integer, got 'many'" out; ok $? "with the reason"
"$KILN_BIN" --config missing.yaml dags list > out 2>&1; is "$?" "2" "a missing settings file exits 2"
printf 'kube_gpus: some\n' > bad3.yaml
"$KILN_BIN" --config bad3.yaml dags list > out 2>&1; is "$?" "2" "a bad kube setting exits 2"
grep -q "bad3.yaml:1:12: kube_gpus must be auto or a number of GPUs, got 'some'" out
ok $? "and names file:line:col"

# A Kubernetes configuration that cannot be loaded turns the executor off,
# not the daemon: local tasks run, Kubernetes tasks fail saying why.
printf 'clusters: [\n' > "$T/kubeconfig"
export KILN_HOME="$T/khome"
mkdir -p "$T/kdags"
cat > "$T/kdags/mixed.yaml" <<'YAML'
dag: mixed
tasks:
  here: {command: [echo, local]}
  there: {command: [echo, pod], executor: kubernetes, kubernetes: {image: busybox}}
YAML
KUBECONFIG="$T/kubeconfig" KILN_DAGS="$T/kdags" "$KILN_BIN" serve > "$T/kd.log" 2>&1 &
KPID=$!
wait_for "[ -S '$KILN_HOME/daemon.sock' ]" 10
KUBECONFIG="$T/kubeconfig" KILN_DAGS="$T/kdags" "$KILN_BIN" dags trigger mixed --wait > out 2>&1
is "$?" "1" "a DAG with a Kubernetes task runs (and fails) beside a broken kubeconfig"
grep -q "kubernetes: $T/kubeconfig:2:1: .*the kubernetes executor is off" "$T/kd.log"
ok $? "the daemon says the executor is off, and why"
is "$(sql "select state from task_instances where task_id='here' order by id desc limit 1")" "success" \
   "the local task ran"
sql "select reason from task_instances where task_id='there' order by id desc limit 1" | \
    grep -q "executor 'kubernetes' is not available in this daemon (set kube_config or KUBECONFIG"
ok $? "the Kubernetes task failed saying what to set"
kill -TERM "$KPID"; wait "$KPID" 2>/dev/null
done_testing
