-- kiln schema, version 4: the web UI's grid reads each run's task instances
-- in DAG order (task_index); without this index that was a sort of every
-- task instance of the runs shown (125,000 rows for 5,000 tasks x 25 runs).
CREATE INDEX task_instances_by_run_index ON task_instances (run_pk, task_index);
