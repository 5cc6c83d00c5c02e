-- The scheduler's state per schedule, beside the run history of `cron_runs`.
--
-- A schedule row is created the first time a scheduler sees the schedule; `since` is that moment, so a
-- new schedule never "catches up" ticks from before it existed. While a schedule is disabled, ticks that
-- fall due move `since` forward instead of running, so re-enabling it does not replay them either.
-- `last_tick_local`/`last_tick_at` is the latest scheduled (not manual) tick that ran: the scheduler
-- fires the ticks after it, and locks this row (`SELECT … FOR UPDATE`) while it decides, so replicas take
-- turns per schedule. Keeping the cursor here (not in `cron_runs`) lets retention trim old runs freely.
CREATE TABLE cron_schedules (
    schedule VARCHAR(100) PRIMARY KEY,
    since TIMESTAMPTZ NOT NULL,
    last_tick_local TIMESTAMP,
    last_tick_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT cron_schedules_tick_pair CHECK ((last_tick_local IS NULL) = (last_tick_at IS NULL))
);

-- The latest runs first, per schedule (status pages, manual runs included).
CREATE INDEX idx_cron_runs_schedule_created ON cron_runs (schedule, created_at DESC);
