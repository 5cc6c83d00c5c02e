DROP INDEX IF EXISTS idx_cron_runs_schedule_created;
DROP TABLE IF EXISTS cron_schedules;
