# Lua DAG files end to end: a generated DAG of 100 tasks runs, and a file that
# tries to leave the sandbox is listed with its error while the others load.
. "$SRCDIR/tests/lib/tap.sh"

cat > "$KILN_DAGS/grid.lua" <<LUA
local d = dag{ id = "grid", max_active_tasks = 50 }
local prep = d:task{ id = "prep", command = {"true"} }
local trains = {}
for _, lr in ipairs{ "0.01", "0.03", "0.1", "0.3" } do
  for depth = 1, 25 do
    trains[#trains + 1] = d:task{
      id = "train_" .. lr .. "_" .. depth, deps = { prep },
      command = { "sh", "-c", "echo " .. lr .. ":" .. depth .. " >> $T/grid.out" },
    }
  end
end
d:task{ id = "pick", deps = trains, command = {"true"} }
return d
LUA
kiln dags test "$KILN_DAGS/grid.lua" --home "$T/h" --parallelism 8 -q > "$T/out" 2>&1
ok $? "a Lua DAG generating 100 tasks runs to success"
is "$(sqlite3 "$T/h/kiln.db" "select count(*) from task_instances where state = 'success'")" "102" \
   "prep, 100 generated tasks and the fan-in all succeeded"
is "$(sort -u "$T/grid.out" | wc -l | tr -d ' ')" "100" "each generated task ran once with its own parameters"

cat > "$KILN_DAGS/escape.lua" <<'LUA'
local d = dag{ id = "escape" }
local f = io.open("/etc/passwd")
d:task{ id = "x", command = {"true"} }
return d
LUA
kiln dags list > "$T/list" 2>&1
is "$?" "1" "dags list exits 1 with a file that fails"
grep -q "escape.lua:2:" "$T/list"; ok $? "the escaping file is reported with file:line"
grep -q "^grid " "$T/list"; ok $? "the other DAGs still load"

cat > "$KILN_DAGS/spin.lua" <<'LUA'
while true do end
LUA
kiln dags list > "$T/list" 2>&1
grep -q "spin.lua: stopped after 10000000 instructions" "$T/list"; ok $? "an endless loop is stopped with the budget message"
done_testing
