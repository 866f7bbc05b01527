#!/bin/sh
# Runs every test: the cmocka unit programs and the integration scripts.
# Each prints TAP; this script counts "ok" and "not ok" lines and ends with
# the line "N passed, N failed".  A program that exits non-zero without
# reporting a failure counts as one failure.
#   KILN_BIN   the kiln binary (default ./kiln)
#   UNIT_DIR   where the unit programs are (default tests/unit)
#   ONLY       a substring: run only the tests whose path contains it
set -u
here=$(cd "$(dirname "$0")" && pwd)
SRCDIR=${SRCDIR:-$(dirname "$here")}
KILN_BIN=${KILN_BIN:-$SRCDIR/kiln}
UNIT_DIR=${UNIT_DIR:-$SRCDIR/tests/unit}
export SRCDIR KILN_BIN CMOCKA_MESSAGE_OUTPUT=TAP
logdir=${TEST_LOG_DIR:-$(mktemp -d /tmp/kiln-tests.XXXXXX)}
mkdir -p "$logdir"
passed=0 failed=0 failed_names=""

run_one() {
    name=$1; shift
    case "$name" in *"${ONLY:-}"*) ;; *) return ;; esac
    log="$logdir/$(echo "$name" | tr '/' '_').log"
    start=$(date +%s)
    ( cd "$SRCDIR" && "$@" ) > "$log" 2>&1
    rc=$?
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^not ok ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        echo "not ok - $name exited with status $rc" >> "$log"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    secs=$(( $(date +%s) - start ))
    if [ "$f" -gt 0 ]; then
        failed_names="$failed_names $name"
        printf '%-40s %4d passed %4d FAILED  (%ss)\n' "$name" "$p" "$f" "$secs"
        grep -E '^not ok|^# ' "$log" | grep -v '^# ok' | head -40 | sed 's/^/    /'
        echo "    (full log: $log)"
    else
        printf '%-40s %4d passed            (%ss)\n' "$name" "$p" "$secs"
    fi
}

for t in "$UNIT_DIR"/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.c|*.o|*.log|*.trs) continue ;; esac
    run_one "unit/$(basename "$t")" "$t"
done
for t in "$SRCDIR"/tests/integration/*.sh; do
    [ -f "$t" ] || continue
    run_one "integration/$(basename "$t" .sh)" sh "$t"
done

echo
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
