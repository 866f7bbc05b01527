# Runs on a schedule, run by the daemon under a shifted clock
# (KILN_TIME_OFFSET), so no test waits for real minutes: catch-up creates
# exactly the missed intervals, catchup: false only the latest, a late start
# fires the run it missed, the timer fires the next one, pause stops
# scheduling, backfills queue apart; `kiln dags next`.
. "$SRCDIR/tests/lib/tap.sh"

# The fake "now" of each daemon start is chosen in the middle of a minute, so
# a phase never straddles a minute boundary by accident.
real=$(date +%s)
M=$(( (real / 60) * 60 + 3600 ))            # a minute boundary an hour ahead
off() { echo $(( $1 - $(date +%s) )); }     # the offset that makes now = $1
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%S; }
serve_at() { stop_daemon; KILN_TIME_OFFSET=$(off "$1") start_daemon; }
runs_of() { sql "select run_id from runs where dag_id='$1' and run_type='scheduled' order by logical_us" | tr '\n' ' '; }
count() { sql "select count(*) from runs where dag_id='$1' and run_type='${2:-scheduled}'"; }
ids() { for t in "$@"; do printf 'scheduled__%s+00:00 ' "$(iso "$t")"; done; }

cat > "$KILN_DAGS/every.yaml" <<YAML
dag: every
schedule: "* * * * *"
start_date: "$(iso $((M - 300)))"
catchup: true
tasks:
  t: {command: [sh, -c, 'echo "{{ ds }} {{ data_interval_start }} {{ data_interval_end }}" >> $T/every.out']}
YAML
cat > "$KILN_DAGS/latest.yaml" <<YAML
dag: latest
schedule: "* * * * *"
start_date: "$(iso $((M - 300)))"
catchup: false
tasks:
  t: {command: ["true"]}
YAML
cat > "$KILN_DAGS/bf.yaml" <<YAML
dag: bf
schedule: "@daily"
max_active_runs: 1
tasks:
  t: {command: [sh, -c, 'sleep 0.3']}
YAML
cat > "$KILN_DAGS/zoned.yaml" <<YAML
dag: zoned
schedule: "0 9 * * *"
timezone: Europe/Berlin
start_date: "2026-01-01"
end_date: "2026-12-31"
tasks:
  t: {command: ["true"]}
YAML

# --- load-time checks: FILE:LINE:COL with the cron message.
printf 'dag: badcron\nschedule: "61 * * * *"\ntasks:\n  a: {command: ["true"]}\n' > "$T/badcron.yaml"
kiln dags test "$T/badcron.yaml" -q > /dev/null 2> "$T/err"
grep -q "badcron.yaml:2:11: cron: minute field: '61' is out of range 0-59" "$T/err"
ok $? "a bad schedule is reported at FILE:LINE:COL with the cron message"
printf 'dag: badstart\nschedule: "@daily"\nstart_date: "2026-02-30x"\ntasks:\n  a: {command: ["true"]}\n' > "$T/badstart.yaml"
kiln dags test "$T/badstart.yaml" -q > /dev/null 2> "$T/err"
grep -q "badstart.yaml:3:13: start_date: " "$T/err"; ok $? "a bad start_date is reported at its value"
printf 'dag: badtz\nschedule: "@daily"\ntimezone: Mars/Base\ntasks:\n  a: {command: ["true"]}\n' > "$T/badtz.yaml"
kiln dags test "$T/badtz.yaml" -q > /dev/null 2> "$T/err"
grep -q "badtz.yaml:3:11: cron: unknown time zone 'Mars/Base'" "$T/err"; ok $? "a bad timezone is reported at its value"

# --- kiln dags next: fire times (interval ends) in the DAG's zone.
is "$(KILN_TIME_OFFSET=$(off $((M + 30))) kiln dags next every -n 3 | tr '\n' ' ')" \
   "$(iso $((M + 60)))+00:00 $(iso $((M + 120)))+00:00 $(iso $((M + 180)))+00:00 " \
   "dags next lists the next fire times"
spring=$(date -u -d 2026-03-28T12:00:00Z +%s)
is "$(KILN_TIME_OFFSET=$(off "$spring") kiln dags next zoned -n 2 -o json)" \
   '["2026-03-29T09:00:00+02:00","2026-03-30T09:00:00+02:00"]' \
   "dags next in the DAG's zone, across a DST change, as JSON"
late=$(date -u -d 2026-12-30T12:00:00Z +%s)
is "$(KILN_TIME_OFFSET=$(off "$late") kiln dags next zoned -n 5 | wc -l)" "1" \
   "no interval starts after end_date"

# --- a backfill without a daemon: queued, runs once the daemon starts.
kiln dags backfill bf --from 2026-01-01 --to 2026-01-04 --max-active 1 > "$T/out"
ok $? "backfill without a daemon"
is "$(cat "$T/out")" "backfill bf: 4 run(s) created, 0 already there" "it reports what it created"
is "$(sql "select group_concat(run_id, ' ') from runs where dag_id='bf' and run_type='backfill' order by id")" \
   "backfill__2026-01-01T00:00:00+00:00 backfill__2026-01-02T00:00:00+00:00 backfill__2026-01-03T00:00:00+00:00 backfill__2026-01-04T00:00:00+00:00" \
   "one run per interval of the range, named after its start"

# --- phase 1: the daemon starts at M+30 (fake), five minutes after start_date.
serve_at $((M + 30)); ok $? "daemon started with a shifted clock"
wait_for "[ \"\$(sql \"select count(*) from runs where dag_id='every' and state='success'\")\" = 5 ]" 15
ok $? "catch-up runs ran"
is "$(runs_of every)" "$(ids $((M - 300)) $((M - 240)) $((M - 180)) $((M - 120)) $((M - 60)))" \
   "catchup: exactly the five missed intervals, oldest first"
is "$(sql "select count(*) from runs where dag_id='every' and data_interval_end_us - logical_us = 60000000")" "5" \
   "each covers one minute"
is "$(runs_of latest)" "$(ids $((M - 60)))" "catchup: false creates only the latest interval"
grep -q "^$(date -u -d "@$((M - 300))" +%Y-%m-%d) $(iso $((M - 300))).* $(iso $((M - 240)))" "$T/every.out"
ok $? "templates render the data interval"

# --- phase 2: a daemon started late (M+118) fires the run it missed at
# once, and its timer fires the next one at M+120 (about two seconds later).
serve_at $((M + 118))
wait_for "[ \"\$(sql \"select count(*) from runs where dag_id='every'\")\" = 6 ]" 5
ok $? "the late start created the missed run"
is "$(sql "select run_id from runs where dag_id='every' order by id desc limit 1")" "$(ids $M | tr -d ' ')" \
   "it is the interval that ended while the daemon was down"
wait_for "[ \"\$(sql \"select count(*) from runs where dag_id='every'\")\" = 7 ]" 10
ok $? "the timer fired the next interval without a restart"
is "$(sql "select created_us >= $((M + 120))000000 from runs where dag_id='every' order by id desc limit 1")" "1" \
   "not before its interval ended"
wait_for "[ \"\$(sql \"select count(*) from runs where dag_id='every' and state='success'\")\" = 7 ]" 10
ok $? "and it ran"

# --- backfills ran one at a time; the scheduled run of bf did not wait for them.
wait_for "[ \"\$(sql \"select count(*) from runs where dag_id='bf' and state='success'\")\" = 5 ]" 20
ok $? "the backfill runs and bf's scheduled run succeeded"
is "$(sql "select count(*) from runs a join runs b on a.id < b.id where a.dag_id='bf' and b.dag_id='bf' and a.run_type='backfill' and b.run_type='backfill' and b.start_us < a.end_us")" \
   "0" "backfill runs with --max-active 1 never overlapped"
is "$(sql "select (select start_us from runs where dag_id='bf' and run_type='scheduled') < (select max(end_us) from runs where dag_id='bf' and run_type='backfill')")" \
   "1" "the scheduled run started before the backfill finished"
kiln dags backfill bf --from 2026-01-01 --to 2026-01-02 > "$T/out"; ok $? "backfill through the daemon"
is "$(cat "$T/out")" "backfill bf: 0 run(s) created, 2 already there" "existing runs are skipped"

# --- pause stops scheduling; unpause creates the missed intervals (catchup).
kiln dags pause every > /dev/null; ok $? "pause"
serve_at $((M + 250))
sleep 1
is "$(count every)" "7" "a paused DAG gets no scheduled runs"
kiln dags unpause every > /dev/null
wait_for "[ \"\$(sql \"select count(*) from runs where dag_id='every'\")\" = 9 ]" 5
ok $? "unpause creates the missed intervals"
is "$(runs_of every | awk '{print $8, $9}')" "$(ids $((M + 120)) $((M + 180)) | sed 's/ $//')" \
   "the two that ended while paused"

# --- a restart at the same time creates nothing twice.
serve_at $((M + 255))
sleep 1
is "$(count every)" "9" "no duplicate after a restart"
is "$(sql "select count(*) from (select dag_id, run_id from runs group by 1, 2 having count(*) > 1)")" "0" \
   "run ids are unique"
stop_daemon

done_testing
