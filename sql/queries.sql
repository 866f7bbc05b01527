-- Named statements, prepared once by store.c.  Each block starts with
-- "-- name: NAME"; tools/embed-sql.sh turns NAME into the constant Q_NAME.

-- name: begin
BEGIN IMMEDIATE;
-- name: commit
COMMIT;
-- name: rollback
ROLLBACK;

-- name: dag_upsert
INSERT INTO dags (dag_id, path, updated_us) VALUES (?1, ?2, ?3)
ON CONFLICT (dag_id) DO UPDATE SET path = excluded.path, updated_us = excluded.updated_us;
-- name: dag_set_version
UPDATE dags SET current_version = ?2 WHERE dag_id = ?1;
-- name: dag_set_paused
UPDATE dags SET paused = ?2, updated_us = ?3 WHERE dag_id = ?1;
-- name: dag_get
SELECT dag_id, path, paused, current_version FROM dags WHERE dag_id = ?1;
-- name: dag_list
SELECT dag_id, path, paused, current_version FROM dags ORDER BY dag_id;

-- name: version_find
SELECT id FROM dag_versions WHERE dag_id = ?1 AND hash = ?2;
-- name: version_insert
INSERT INTO dag_versions (dag_id, hash, path, source, created_us) VALUES (?1, ?2, ?3, ?4, ?5);
-- name: version_get
SELECT id, dag_id, hash, path, source FROM dag_versions WHERE id = ?1;

-- name: run_insert
INSERT INTO runs (dag_id, run_id, version_id, run_type, state, params, logical_us, created_us)
VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7);
-- name: run_set_state
UPDATE runs SET state = ?2,
       start_us = COALESCE(?3, start_us),
       end_us = ?4
 WHERE id = ?1;
-- name: run_get
SELECT id, dag_id, run_id, version_id, run_type, state, params, logical_us, created_us,
       start_us, end_us, data_interval_end_us, backfill_max_active FROM runs WHERE id = ?1;
-- name: run_find
SELECT id FROM runs WHERE dag_id = ?1 AND run_id = ?2;
-- name: run_latest
SELECT id FROM runs WHERE dag_id = ?1 ORDER BY id DESC LIMIT 1;
-- name: run_unfinished
SELECT id FROM runs WHERE state IN ('queued', 'running') ORDER BY id;
-- name: run_list
SELECT id, dag_id, run_id, version_id, run_type, state, params, logical_us, created_us,
       start_us, end_us FROM runs
 WHERE (?1 IS NULL OR dag_id = ?1) AND (?2 IS NULL OR state = ?2)
 ORDER BY id DESC LIMIT ?3;
-- name: run_count_active
SELECT count(*) FROM runs WHERE dag_id = ?1 AND state = 'running';

-- name: ti_insert
INSERT INTO task_instances (run_pk, task_id, task_index, state, max_tries, updated_us)
VALUES (?1, ?2, ?3, 'none', ?4, ?5);
-- name: ti_set_state
UPDATE task_instances SET state = ?2, try_number = ?3, retry_at_us = ?4, reason = ?5,
       start_us = ?6, end_us = ?7, updated_us = ?8, max_tries = ?9, infra_failures = ?10
 WHERE id = ?1;
-- name: ti_list
SELECT id, task_id, task_index, state, try_number, max_tries, retry_at_us, reason,
       start_us, end_us, infra_failures FROM task_instances WHERE run_pk = ?1 ORDER BY task_index;

-- name: try_insert
INSERT INTO tries (ti_pk, try_number, state, executor, queued_us, log_path)
VALUES (?1, ?2, 'queued', ?3, ?4, ?5);
-- name: try_started
UPDATE tries SET state = 'running', executor_id = ?2, start_us = ?3 WHERE id = ?1;
-- name: try_finished
UPDATE tries SET state = ?2, end_us = ?3, exit_code = CASE WHEN ?4 < 0 THEN NULL ELSE ?4 END,
       signal = nullif(?5, 0), reason = ?6,
       start_us = COALESCE(start_us, ?7), outputs = ?8
 WHERE id = ?1;
-- name: try_get_latest
SELECT id, try_number, state, executor, executor_id, queued_us, start_us, end_us, exit_code,
       signal, reason, log_path, outputs FROM tries WHERE ti_pk = ?1 ORDER BY try_number DESC LIMIT 1;
-- name: try_list
SELECT id, try_number, state, executor, executor_id, queued_us, start_us, end_us, exit_code,
       signal, reason, log_path, outputs FROM tries WHERE ti_pk = ?1 ORDER BY try_number;

-- name: audit_insert
INSERT INTO audit_log (at_us, actor, action, dag_id, run_id, task_id, detail)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7);

-- name: command_insert
INSERT INTO commands (created_us, actor, body) VALUES (?1, ?2, ?3);
-- name: command_pending
SELECT id, actor, body FROM commands WHERE state = 'pending' ORDER BY id LIMIT 64;
-- name: command_finish
UPDATE commands SET state = ?2, result = ?3, done_us = ?4 WHERE id = ?1;
-- name: command_get
SELECT state, result FROM commands WHERE id = ?1;

-- name: run_find_pk
SELECT id FROM runs WHERE id = ?1 AND dag_id = ?2;

-- A command's writes are undone together if it fails half-way, without
-- touching the rest of the turn's transaction.
-- name: savepoint
SAVEPOINT cmd;
-- name: release
RELEASE cmd;
-- name: rollback_to
ROLLBACK TO cmd;

-- name: ti_get
SELECT id, task_id, task_index, state, try_number, max_tries, retry_at_us, reason,
       start_us, end_us FROM task_instances WHERE run_pk = ?1 AND task_id = ?2;

-- DAG folder and versions (sql/002_versions.sql).
-- name: version_set_git
UPDATE dag_versions SET git_commit = ?2, git_dirty = ?3 WHERE id = ?1;
-- name: version_list
SELECT v.id, v.hash, v.git_commit, v.git_dirty, v.created_us, v.path,
       (SELECT count(*) FROM runs r WHERE r.version_id = v.id),
       coalesce(d.current_version = v.id, 0)
  FROM dag_versions v LEFT JOIN dags d ON d.dag_id = v.dag_id
 WHERE v.dag_id = ?1 ORDER BY v.id;
-- name: version_meta
SELECT id, hash, git_commit, git_dirty, created_us, path FROM dag_versions WHERE id = ?1;
-- name: dag_seen
INSERT INTO dags (dag_id, path, updated_us) VALUES (?1, ?2, ?3)
ON CONFLICT (dag_id) DO UPDATE SET path = excluded.path, updated_us = excluded.updated_us,
       file_missing = 0, last_error = NULL;
-- name: dag_set_missing
UPDATE dags SET file_missing = 1, updated_us = ?2 WHERE dag_id = ?1 AND file_missing = 0;
-- name: dag_set_error_by_path
UPDATE dags SET last_error = ?2, updated_us = ?3 WHERE path = ?1 AND file_missing = 0;
-- name: dag_state
SELECT dag_id, path, file_missing, last_error, current_version FROM dags WHERE dag_id = ?1;
-- name: dag_all
SELECT dag_id, path, file_missing FROM dags ORDER BY dag_id;

-- What an upstream task wrote to KILN_OUTPUTS in its latest successful try,
-- for {{ tasks.ID.outputs.KEY }} templates.
-- name: try_outputs_success
SELECT outputs FROM tries WHERE ti_pk = ?1 AND state = 'success'
 ORDER BY try_number DESC LIMIT 1;

-- Schedules (sql/003_schedule.sql).
-- name: run_set_interval
UPDATE runs SET data_interval_end_us = ?2, backfill_max_active = ?3 WHERE id = ?1;
-- name: run_last_scheduled_end
SELECT max(data_interval_end_us) FROM runs WHERE dag_id = ?1 AND run_type = 'scheduled';
-- name: dag_paused
SELECT paused, file_missing FROM dags WHERE dag_id = ?1;

-- The HTTP API (webui/api.c): a DAG's runs, newest first, one page at a
-- time (?3: the number of the last run of the previous page).
-- name: run_page
SELECT id, dag_id, run_id, version_id, run_type, state, params, logical_us, created_us,
       start_us, end_us FROM runs
 WHERE dag_id = ?1 AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR id < ?3)
 ORDER BY id DESC LIMIT ?4;
-- name: version_source
SELECT source FROM dag_versions WHERE id = ?1 AND dag_id = ?2;

-- The web UI: the grid (task states of a DAG's last N runs) and /metrics.
-- name: ui_grid
SELECT task_index, task_id, state FROM task_instances
 WHERE run_pk = ?1 ORDER BY task_index;
-- name: metrics_runs
SELECT state, count(*) FROM runs GROUP BY state;
-- name: metrics_tis
SELECT state, count(*) FROM task_instances GROUP BY state;

-- The HTTP API's reader threads (webui/reads.c): one snapshot per answer on
-- their read-only connections, and the loop's check for commits made by
-- other connections (kiln db, another process).
-- name: read_begin
BEGIN DEFERRED;
-- name: read_end
COMMIT;
-- name: data_version
PRAGMA data_version;
-- A run's tries in one statement, in the order of its task instances
-- (task_index, then try_number): the API's run answer for a run of
-- thousands of tasks, instead of one try_list per task.  The columns are
-- try_list's, then ti_pk.
-- name: api_run_tries
SELECT t.id, t.try_number, t.state, t.executor, t.executor_id, t.queued_us, t.start_us,
       t.end_us, t.exit_code, t.signal, t.reason, t.log_path, t.outputs, t.ti_pk
  FROM task_instances ti JOIN tries t ON t.ti_pk = ti.id
 WHERE ti.run_pk = ?1 ORDER BY ti.task_index, t.try_number;
