-- kiln schema, version 2: DAG versions know their git commit; DAGs whose
-- file is gone, or broken, say so.
-- git_commit: the commit checked out in the DAG folder's work tree when the
-- version was first recorded (NULL outside a work tree).  git_dirty: 1 when
-- the file differed from that commit, 0 when not, NULL when unknown.
ALTER TABLE dag_versions ADD COLUMN git_commit TEXT;
ALTER TABLE dag_versions ADD COLUMN git_dirty INTEGER;
-- file_missing: the DAG's file left the folder; it no longer runs, its
-- history stays.  last_error: why its file does not load now (the previous
-- good version stays usable), NULL when it loads.
ALTER TABLE dags ADD COLUMN file_missing INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dags ADD COLUMN last_error TEXT;
