# The web UI in a real browser: Debian's chromium driven by playwright-core
# (tests/e2e/ui.spec.mjs).  Opens the DAG list, the grid, clicks a failed
# task, reads its log, triggers a run with a param from the form and watches
# it turn green without a reload; then the action buttons: clear a failed
# task and watch it re-run, mark it, cancel a running run, an error inline.
# Screenshots go to a folder it prints.
. "$SRCDIR/tests/lib/tap.sh"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
E2E="$SRCDIR/tests/e2e"
if [ ! -x "$CHROMIUM" ]; then echo "1..0 # SKIP no chromium at $CHROMIUM"; exit 0; fi
if ! command -v node >/dev/null 2>&1; then echo "1..0 # SKIP no node"; exit 0; fi
if [ ! -d "$E2E/node_modules/playwright-core" ]; then
    if ! command -v npm >/dev/null 2>&1 ||
       ! (cd "$E2E" && npm install --no-audit --no-fund >/dev/null 2>&1); then
        echo "1..0 # SKIP playwright-core is not installed and npm cannot install it"
        exit 0
    fi
fi

KILN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export KILN_PORT
BASE="http://127.0.0.1:$KILN_PORT"
cat > "$KILN_DAGS/etl.yaml" <<YAML
dag: etl
params: {who: world}
tasks:
  extract: {command: [sh, -c, 'echo "extracting for {{ params.who }}"; sleep 1']}
  transform: {deps: [extract], command: [sh, -c, 'echo "hello {{ params.who }}"; echo "{\\"rows\\": 3}" > \$KILN_OUTPUTS']}
  load: {deps: [transform], command: [sh, -c, 'echo loaded']}
YAML
cat > "$KILN_DAGS/flaky.yaml" <<YAML
dag: flaky
tasks:
  fetch: {command: [sh, -c, 'echo fetching']}
  parse: {deps: [fetch], command: [sh, -c, 'echo "parse error: bad row 42" >&2; exit 3']}
  report: {deps: [parse], command: ["true"]}
YAML
cat > "$KILN_DAGS/slow.yaml" <<YAML
dag: slow
tasks:
  wait: {command: [sleep, "60"]}
YAML
start_daemon; ok $? "daemon started"
wait_for "curl -sf $BASE/healthz" 10; ok $? "the API answers"
TOKEN=$(cat "$KILN_HOME/token")
curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -d '{"run_id":"first"}' \
     "$BASE/api/v1/dags/flaky/runs"
wait_for "[ \"\$(sql \"select state from runs where run_id='first'\")\" = failed ]" 20
ok $? "a failing run to look at"

SHOTS=${UI_SHOTS:-$(mktemp -d /tmp/kiln-ui-shots.XXXXXX)}
mkdir -p "$SHOTS"
echo "# screenshots in $SHOTS"
KILN_URL=$BASE KILN_TOKEN=$TOKEN SHOTS=$SHOTS CHROMIUM=$CHROMIUM \
    node "$E2E/ui.spec.mjs" > "$T/e2e.out" 2>&1
rc=$?
grep -E '^(ok|not ok|#)' "$T/e2e.out"
[ $rc -eq 0 ]; ok $? "the browser scenario ran to its end"
[ $rc -eq 0 ] || sed 's/^/# /' "$T/e2e.out" | tail -20
done_testing
