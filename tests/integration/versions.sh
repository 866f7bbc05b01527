# The DAG folder as a git checkout: the daemon watches it and records each
# new content of a DAG file as a version (hash, git commit, dirty flag)
# within a second of a save; a run keeps the version it started with; a
# deleted file stops its DAG and keeps its history; a broken edit keeps the
# previous good version usable and shows the error.
. "$SRCDIR/tests/lib/tap.sh"
if ! command -v git > /dev/null 2>&1; then
    echo "1..0 # SKIP git is not installed"
    exit 0
fi
g() { git -C "$KILN_DAGS" -c user.name=kiln -c user.email=kiln@example.invalid "$@"; }
nversions() { sql "select count(*) from dag_versions where dag_id='$1'"; }
vid() { sql "select id from dag_versions where dag_id='ver' order by id limit 1 offset $(($1 - 1))"; }
ti_set() { sql "select group_concat(task_id, ',') from (select task_id from task_instances where run_pk=(select id from runs where dag_id='ver' and run_id='$1') order by task_index)"; }

cat > "$KILN_DAGS/ver.yaml" <<YAML
dag: ver
tasks:
  first: {command: [sh, -c, 'while [ ! -e $T/go ]; do sleep 0.05; done']}
YAML
printf 'dag: other\ntasks:\n  x: {command: ["true"]}\n' > "$KILN_DAGS/other.yaml"
g init -q && g add . && g commit -qm one; ok $? "the DAG folder is a git repository"
c1=$(g rev-parse HEAD)

start_daemon; ok $? "daemon started"
wait_for "[ \"\$(nversions ver)\" = 1 ]" 10; ok $? "the daemon recorded the first version at start"
is "$(sql "select git_commit || ' ' || git_dirty from dag_versions where dag_id='ver'")" "$c1 0" \
   "version 1 has the HEAD commit and is clean"

kiln dags trigger ver --run-id before > /dev/null; ok $? "a run starts on version 1"
wait_for "[ \"\$(sql \"select state from task_instances where task_id='first' and run_pk=(select id from runs where run_id='before')\")\" = running ]" 10
ok $? "its long task is running"

# --- an edit is recorded within a second, with the commit and dirty=1.
lines_before=$(grep -c "file(s) loaded or changed" "$T/daemon.log")
t0=$(date +%s%N)
printf '  second: {deps: [first], command: ["true"]}\n' >> "$KILN_DAGS/ver.yaml"
wait_for "[ \"\$(nversions ver)\" = 2 ]" 5; ok $? "the edit is recorded as version 2"
lat=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$lat" -lt 1000 ]; ok $? "within a second of the save ($lat ms)"
is "$(sql "select git_commit || ' ' || git_dirty from dag_versions where dag_id='ver' order by id desc limit 1")" \
   "$c1 1" "version 2 has the commit and dirty=1"
kiln dags versions ver > "$T/versions"; ok $? "kiln dags versions"
grep -Eq "^$(vid 2) +\\* +[0-9a-f]{12} +$(echo "$c1" | cut -c1-12)\\+ +yes " "$T/versions"
ok $? "it lists version 2 as current, with the short commit and dirty"
is "$(kiln dags versions ver -o json | grep -c '"git_commit": "'"$c1"'"')" "2" "-o json has both versions' commit"
wait_for "[ \$(grep -c 'file(s) loaded or changed' $T/daemon.log) -gt $lines_before ]" 5
grep "file(s) loaded or changed" "$T/daemon.log" | tail -1 | grep -q ": 1 file(s) loaded or changed"
ok $? "only the changed file was reloaded"

# --- the running run keeps version 1; a new trigger uses version 2.
kiln dags trigger ver --run-id after > /dev/null; ok $? "a trigger after the edit"
touch "$T/go"
wait_for "[ \"\$(sql \"select group_concat(state) from runs where dag_id='ver'\")\" = success,success ]" 20
ok $? "both runs succeed"
is "$(ti_set before)" "first" "the run started before the edit ran version 1's tasks"
is "$(ti_set after)" "first,second" "the run started after it ran version 2's tasks"
is "$(sql "select group_concat(version_id) from runs where dag_id='ver' order by id")" "$(vid 1),$(vid 2)" "each run records its version"
kiln runs show ver before > "$T/show"
grep -q "^version $(vid 1), hash [0-9a-f]\{12\}, git commit $(echo "$c1" | cut -c1-12)$" "$T/show"
ok $? "runs show prints the run's version, hash and commit"
kiln runs show ver after | grep -q "^version $(vid 2), .* (dirty)$"; ok $? "and dirty for the edited version"
kiln runs show ver after -o json | grep -q '"git_commit": "'"$c1"'"'; ok $? "runs show -o json has the commit"

# --- a commit made while the daemon is down: recorded at start, clean.
stop_daemon
printf '  third: {deps: [second], command: ["true"]}\n' >> "$KILN_DAGS/ver.yaml"
g commit -qam two
c2=$(g rev-parse HEAD)
start_daemon; ok $? "daemon restarted"
wait_for "[ \"\$(nversions ver)\" = 3 ]" 10; ok $? "the committed change is version 3"
is "$(sql "select git_commit || ' ' || git_dirty from dag_versions where dag_id='ver' order by id desc limit 1")" \
   "$c2 0" "version 3 has the new commit and is clean"

# --- a broken edit: the error is shown, the previous good version stays usable.
printf 'dag: ver\ntasks:\n  first: {command: [true\n' > "$KILN_DAGS/ver.yaml"
wait_for "[ -n \"\$(sql \"select last_error from dags where dag_id='ver'\")\" ]" 5
ok $? "the daemon records the broken file's error"
sql "select last_error from dags where dag_id='ver'" | grep -q "ver.yaml:"; ok $? "with FILE:LINE"
kiln dags list > "$T/list" 2>&1; is "$?" "1" "dags list exits 1"
grep -q "ver.yaml:.*YAML" "$T/list"; ok $? "and shows the error"
kiln dags trigger ver --run-id broken --wait > /dev/null; ok $? "a trigger still runs, on the last good version"
is "$(sql "select version_id from runs where run_id='broken'")" "$(vid 3)" "it used version 3"
is "$(ti_set broken)" "first,second,third" "with version 3's tasks"
is "$(nversions ver)" "3" "no version was recorded for the broken file"
g checkout -q -- ver.yaml
wait_for "[ -z \"\$(sql \"select last_error from dags where dag_id='ver'\")\" ]" 5
ok $? "restoring the file clears the error"

# --- a deleted file: the DAG stops, its history stays.
rm "$KILN_DAGS/ver.yaml"
wait_for "[ \"\$(sql \"select file_missing from dags where dag_id='ver'\")\" = 1 ]" 5
ok $? "the daemon marks the DAG's file missing"
kiln dags trigger ver > /dev/null 2> "$T/err"; is "$?" "3" "a trigger of the deleted DAG exits 3"
grep -q "no longer in" "$T/err"; ok $? "with a clear message"
is "$(kiln runs list ver -o json | grep -c '"run_id"')" "3" "its runs are still listed"
is "$(kiln dags versions ver -o json | grep -c '"version"')" "3" "its versions are still listed"
kiln dags list | grep -q "^DAGs whose file left the folder.*: ver$"; ok $? "dags list names the DAG whose file left"
kiln dags trigger other --wait > /dev/null; ok $? "the other DAG still runs"
stop_daemon
done_testing
