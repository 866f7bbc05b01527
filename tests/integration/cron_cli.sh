# kiln cron next: fire times in UTC and in DST zones, JSON output, exit
# statuses and messages for bad input, and no state folder created.
. "$SRCDIR/tests/lib/tap.sh"

# every 15 minutes, UTC by default
is "$(kiln cron next '*/15 * * * *' --after 2026-01-01T00:00:00Z -n 3)" \
"2026-01-01T00:15:00+00:00
2026-01-01T00:30:00+00:00
2026-01-01T00:45:00+00:00" "*/15 in UTC"

# default count is 5
is "$(kiln cron next @daily --after 2026-01-01T00:00Z | wc -l | tr -d ' ')" "5" "five fire times by default"

# the issue's leap-year example
is "$(kiln cron next '0 0 29 2 *' --after 2027-03-01T00:00Z -n 1)" "2028-02-29T00:00:00+00:00" \
   "Feb 29: next after 2027-03-01 is 2028-02-29"

# day-of-month OR day-of-week
is "$(kiln cron next '0 0 13 * fri' --after 2026-01-01T00:00Z -n 4)" \
"2026-01-02T00:00:00+00:00
2026-01-09T00:00:00+00:00
2026-01-13T00:00:00+00:00
2026-01-16T00:00:00+00:00" "13th OR Friday"

# spring forward in New York: 02:30 fires once at 03:00 EDT
is "$(kiln cron next '30 2 * * *' --tz America/New_York --after 2026-03-07 -n 3)" \
"2026-03-07T02:30:00-05:00
2026-03-08T03:00:00-04:00
2026-03-09T02:30:00-04:00" "New York spring forward: 02:30 -> 03:00 EDT"

# fall back in Berlin: 02:30 fires once
is "$(kiln cron next '30 2 * * *' --tz Europe/Berlin --after 2026-10-24T12:00 -n 2)" \
"2026-10-25T02:30:00+02:00
2026-10-26T02:30:00+01:00" "Berlin fall back: 02:30 once"

# hourly through Sydney's April fall back: both 02:00s
is "$(kiln cron next '0 * * * *' --tz Australia/Sydney --after 2026-04-05T01:30+11:00 -n 3)" \
"2026-04-05T02:00:00+11:00
2026-04-05T02:00:00+10:00
2026-04-05T03:00:00+10:00" "Sydney fall back: hourly fires in both passes"

# Sydney spring forward in October (southern hemisphere)
is "$(kiln cron next '30 2 * * *' --tz=Australia/Sydney --after=2026-10-03T12:00 -n 1)" \
   "2026-10-04T03:00:00+11:00" "Sydney spring forward in October, --opt=value forms"

# --after without an offset is wall time in the zone
is "$(kiln cron next '0 12 * * *' --tz Asia/Tokyo --after 2026-01-01T12:00 -n 1)" \
   "2026-01-02T12:00:00+09:00" "--after is local time in --tz"

# unquoted fields are joined
is "$(kiln cron next 0 3 '*' '*' mon --after 2026-01-01T00:00Z -n 1)" \
   "2026-01-05T03:00:00+00:00" "fields as separate arguments"

# JSON
is "$(kiln cron next @hourly --after 2026-01-01T00:00Z -n 2 -o json)" \
   '["2026-01-01T01:00:00+00:00","2026-01-01T02:00:00+00:00"]' "-o json prints an array of strings"
kiln -o json cron next @weekly --after 2026-01-01T00:00Z -n 1 > "$T/j" 2>&1
is "$(cat "$T/j")" '["2026-01-04T00:00:00+00:00"]' "-o json before the command"

# default --after is now: the first fire time is in the future
first=$(kiln cron next '* * * * *' -n 1)
now=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)
[ "$first" \> "$now" ]; ok $? "without --after the first time is after now ($first > $now)"

# the end of time: print what there is
is "$(kiln cron next '0 0 1 1 *' --after 9998-06-01T00:00Z -n 5)" "9999-01-01T00:00:00+00:00" \
   "stops at year 9999"

# errors: exit 2 and the reason
check_err() { # expected-message description args...
    want=$1; desc=$2; shift 2
    kiln cron "$@" > "$T/out" 2> "$T/err"
    rc=$?
    is "$rc" "2" "$desc: exit 2"
    is "$(cat "$T/err")" "$want" "$desc: message"
    is "$(cat "$T/out")" "" "$desc: nothing on stdout"
}
check_err "kiln: cron: minute field: '61' is out of range 0-59" "minute 61" next '61 * * * *'
check_err "kiln: cron: day-of-week field: unknown name 'fry'" "weekday fry" next '0 0 * * fry'
check_err "kiln: cron: expected 5 fields, got 4" "four fields" next '0 0 * *'
check_err "kiln: cron: never fires: day-of-month '30' does not occur in month '2'" "30 Feb" \
          next '0 0 30 2 *'
check_err "kiln: cron: never fires: day-of-month '31' does not occur in month '4,6,9,11'" \
          "31st of 30-day months" next '0 0 31 4,6,9,11 *'
check_err "kiln: cron: invalid time zone name '../../etc/passwd'" "zone with .." \
          next '0 0 * * *' --tz ../../etc/passwd
check_err "kiln: cron: unknown time zone 'Mars/Base' (no file ${TZDIR:-/usr/share/zoneinfo}/Mars/Base)" \
          "unknown zone" next '0 0 * * *' --tz Mars/Base
check_err "kiln: cron: cannot parse 'yesterday' as an ISO-8601 time (YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM])" \
          "bad --after" next '0 0 * * *' --after yesterday
check_err "kiln: cron: -n takes a number from 1 to 10000, got '0'" "-n 0" next '0 0 * * *' -n 0
check_err "kiln: cron: --tz needs a value" "--tz without a value" next '0 0 * * *' --tz
check_err "kiln: cron: unknown option '--frobnicate'" "unknown option" next '0 0 * * *' --frobnicate
check_err "kiln: cron: unknown subcommand 'prev' (try: kiln cron next)" "unknown subcommand" \
          prev '0 0 * * *'
kiln cron > /dev/null 2>&1; is "$?" "2" "no subcommand: exit 2"
kiln cron next > /dev/null 2>&1; is "$?" "2" "no expression: exit 2"

# help
kiln cron --help > "$T/help"; ok $? "kiln cron --help exits 0"
grep -q 'usage: kiln cron next' "$T/help"; ok $? "help shows the usage"
kiln --help | grep -q 'cron next'; ok $? "kiln --help lists cron"

# a pure computation: no state folder, no settings
mkdir -p "$T/empty" && (cd "$T/empty" && env -u KILN_HOME "$KILN_BIN" cron next @daily -n 1 > /dev/null)
ok $? "runs in an empty folder"
[ ! -e "$T/empty/.kiln" ]; ok $? "creates no .kiln folder"

done_testing
