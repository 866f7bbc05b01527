-- The ML pipeline with a learning-rate sweep (docs/dag-lua.md): prepare once,
-- train with Adam at three learning rates in parallel, evaluate each (a loose
-- gate), pick the most accurate (ties: the first) and deploy it.  As in
-- ml_pipeline.yaml the steps are kiln's task programs, found on the tasks' PATH,
-- and relative paths are relative to dags/.
--   kiln dags test dags/ml_sweep.lua -p workdir=/tmp/sweep
local d = dag{
  id = "ml_sweep",
  description = "Sweep Adam learning rates, deploy the most accurate model",
  max_active_runs = 1,
  params = { data = "../data/breast_cancer.csv", workdir = "../.kiln/ml",
             model_name = "breast_cancer_sweep", seed = 42, epochs = 100 },
  default = { timeout = "10m" },
}
local run = "{{ params.workdir }}/runs/{{ run_id }}"

local mk = d:task{ id = "workdir",
                   command = {"mkdir", "-p", run, "{{ params.workdir }}/registry"} }
local prep = d:task{ id = "prepare", deps = {mk},
  command = {"kiln-clean", "{{ params.data }}", "-o", run .. "/train.csv", "--dedup",
             "--impute", "mean", "--split", "0.25", "--seed", "{{ params.seed }}",
             "--test-output", run .. "/test.csv"} }

local evals, pick_args = {}, {}
for i, lr in ipairs{0.001, 0.01, 0.1} do
  local model = string.format("%s/model_lr%g.json", run, lr)
  local train = d:task{ id = "train_" .. i, deps = {prep},
    command = {"kiln-train", "--data", run .. "/train.csv", "--target", "target",
               "--solver", "adam", "--lr", tostring(lr), "--epochs", "{{ params.epochs }}",
               "--val-fraction", "0.2", "--seed", "{{ params.seed }}", "--out", model} }
  local ev = d:task{ id = "evaluate_" .. i, deps = {train},
    command = {"kiln-eval", "--model", model, "--data", run .. "/test.csv",
               "--min-accuracy", "0.8"} }
  evals[#evals + 1] = ev
  for _, a in ipairs{tostring(lr), "{{ tasks." .. ev .. ".outputs.accuracy }}", model} do
    pick_args[#pick_args + 1] = a
  end
end

-- Arguments in threes: learning rate, accuracy, model path.
local pick = {"sh", "-c", [[
best_acc=-1
while [ $# -ge 3 ]; do
  if awk -v a="$2" -v b="$best_acc" 'BEGIN { exit !(a > b) }'; then
    best_lr=$1 best_acc=$2 best_model=$3
  fi
  shift 3
done
echo "best: lr $best_lr accuracy $best_acc ($best_model)"
printf '{"lr": %s, "accuracy": %s, "model": "%s"}\n' "$best_lr" "$best_acc" "$best_model" > "$KILN_OUTPUTS"
]], "pick"}
for _, a in ipairs(pick_args) do pick[#pick + 1] = a end
local best = d:task{ id = "pick", deps = evals, command = pick }

d:task{ id = "deploy", deps = {best},
  command = {"kiln-deploy", "publish", "--registry", "{{ params.workdir }}/registry",
             "--name", "{{ params.model_name }}", "--model", "{{ tasks.pick.outputs.model }}",
             "--metrics", '{"accuracy": {{ tasks.pick.outputs.accuracy }}, "lr": {{ tasks.pick.outputs.lr }}}'} }

return d
