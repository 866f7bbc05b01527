-- kiln schema, version 5: a task instance's infrastructure failures (pods
-- evicted, nodes lost, images that never pulled) are counted against their
-- own budget (infra_retries).  The count is kept with the task instance, so a
-- restart of the daemon does not hand out a fresh budget.
ALTER TABLE task_instances ADD COLUMN infra_failures INTEGER NOT NULL DEFAULT 0;
