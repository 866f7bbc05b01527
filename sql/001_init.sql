-- kiln schema, version 1.
-- Times are integers: microseconds since the Unix epoch (UTC).
-- The scheduler's in-memory state is a cache of these tables; after a crash
-- the daemon rebuilds it from here alone.

-- One row per DAG id ever seen.  A DAG whose file disappears keeps its row
-- and its history.
CREATE TABLE dags (
    dag_id          TEXT PRIMARY KEY,
    path            TEXT,
    paused          INTEGER NOT NULL DEFAULT 0,
    current_version INTEGER,
    updated_us      INTEGER NOT NULL
);

-- Every distinct content of a DAG file that a run used.  The source is kept
-- so a run started on an old version finishes on it after a restart.
CREATE TABLE dag_versions (
    id          INTEGER PRIMARY KEY,
    dag_id      TEXT NOT NULL,
    hash        TEXT NOT NULL,
    path        TEXT NOT NULL,
    source      BLOB NOT NULL,
    created_us  INTEGER NOT NULL,
    UNIQUE (dag_id, hash)
);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    dag_id        TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    version_id    INTEGER NOT NULL REFERENCES dag_versions(id),
    run_type      TEXT NOT NULL,            -- manual | scheduled | backfill | test
    state         TEXT NOT NULL,            -- queued | running | success | failed
    params        TEXT,                     -- JSON object
    logical_us    INTEGER,
    created_us    INTEGER NOT NULL,
    start_us      INTEGER,
    end_us        INTEGER,
    UNIQUE (dag_id, run_id)
);
CREATE INDEX runs_by_dag ON runs (dag_id, id);
CREATE INDEX runs_unfinished ON runs (state) WHERE state IN ('queued', 'running');

CREATE TABLE task_instances (
    id          INTEGER PRIMARY KEY,
    run_pk      INTEGER NOT NULL REFERENCES runs(id),
    task_id     TEXT NOT NULL,
    task_index  INTEGER NOT NULL,           -- position in the DAG version's task list
    state       TEXT NOT NULL,              -- Airflow's names; 'none' before anything
    try_number  INTEGER NOT NULL DEFAULT 0, -- number of the latest try (0: none yet)
    max_tries   INTEGER NOT NULL,
    retry_at_us INTEGER,                    -- when an up_for_retry task may run again
    reason      TEXT,
    start_us    INTEGER,
    end_us      INTEGER,
    updated_us  INTEGER NOT NULL,
    UNIQUE (run_pk, task_id)
);

-- Every try is kept.  A row is written (and committed) before the executor is
-- asked to start it, so a try is never started twice: after a crash the
-- executor is asked what became of it instead.
CREATE TABLE tries (
    id          INTEGER PRIMARY KEY,
    ti_pk       INTEGER NOT NULL REFERENCES task_instances(id),
    try_number  INTEGER NOT NULL,
    state       TEXT NOT NULL,              -- queued | running | success | failed | skipped
    executor    TEXT NOT NULL,
    executor_id TEXT,                       -- pid or pod name
    queued_us   INTEGER NOT NULL,
    start_us    INTEGER,
    end_us      INTEGER,
    exit_code   INTEGER,
    signal      INTEGER,
    reason      TEXT,
    log_path    TEXT NOT NULL,
    outputs     TEXT,
    UNIQUE (ti_pk, try_number)
);

-- Who did what, for every user action (CLI or API).
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at_us    INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    dag_id   TEXT,
    run_id   TEXT,
    task_id  TEXT,
    detail   TEXT
);

-- Mutations requested while a daemon runs.  The CLI inserts a row and nudges
-- the daemon; the daemon applies it through the same entry point the CLI uses
-- when no daemon runs, and writes the outcome back.
CREATE TABLE commands (
    id          INTEGER PRIMARY KEY,
    created_us  INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    body        TEXT NOT NULL,              -- JSON: {"op": "...", ...}
    state       TEXT NOT NULL DEFAULT 'pending',  -- pending | done | error
    result      TEXT,
    done_us     INTEGER
);
CREATE INDEX commands_pending ON commands (id) WHERE state = 'pending';
