-- kiln schema, version 3: runs on a schedule (engine/schedule.h).
-- data_interval_end_us: the end of the run's data interval (its start is
-- logical_us); NULL for manual runs, whose interval is their logical date.
-- The newest scheduled run's end is where the scheduler resumes, so no
-- other schedule state is stored.  backfill_max_active: how many runs of
-- the backfill this run belongs to may run at once (backfill runs only).
ALTER TABLE runs ADD COLUMN data_interval_end_us INTEGER;
ALTER TABLE runs ADD COLUMN backfill_max_active INTEGER;
CREATE INDEX runs_by_type ON runs (dag_id, run_type, data_interval_end_us);
