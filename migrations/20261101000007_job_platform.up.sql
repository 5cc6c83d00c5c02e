-- The job platform's own tables: the outbox, the ledger, dead letters, cron runs, and the bench job's marks.

-- Every unit of work that matters is a row here (written in the same transaction as its business row)
-- before it is a job in Redis. The outbox sweep re-pushes rows that are not completed and were last pushed
-- longer ago than the stale window; Redis drops a push whose task id it still knows, so a re-push only
-- revives jobs that Redis lost (flush, failover, restart without persistence).
CREATE TABLE job_outbox (
    job_id UUID PRIMARY KEY,
    queue VARCHAR(50) NOT NULL,
    kind VARCHAR(100) NOT NULL,
    args JSONB NOT NULL,
    max_attempts INTEGER NOT NULL,
    run_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_pushed_at TIMESTAMPTZ,
    push_count INTEGER NOT NULL DEFAULT 0,
    completed_at TIMESTAMPTZ,
    outcome VARCHAR(20),
    CONSTRAINT valid_outcome CHECK (outcome IN ('succeeded', 'dead', 'deleted'))
);
CREATE INDEX idx_job_outbox_pending ON job_outbox (last_pushed_at NULLS FIRST) WHERE completed_at IS NULL;

-- The ledger: one row per execution, written in batches off the job's path.
CREATE TABLE job_runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue VARCHAR(50) NOT NULL,
    kind VARCHAR(100) NOT NULL,
    job_id UUID NOT NULL,
    task_id VARCHAR(40) NOT NULL,
    attempt INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL,
    error TEXT,
    worker VARCHAR(200) NOT NULL,
    enqueued_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    args_summary VARCHAR(500) NOT NULL DEFAULT '',
    CONSTRAINT valid_run_status CHECK (status IN ('succeeded', 'retrying', 'dead'))
);
CREATE INDEX idx_job_runs_finished ON job_runs (finished_at DESC);
CREATE INDEX idx_job_runs_queue_finished ON job_runs (queue, finished_at DESC);
CREATE INDEX idx_job_runs_job ON job_runs (job_id, attempt);
CREATE INDEX idx_job_runs_status_finished ON job_runs (status, finished_at DESC) WHERE status <> 'succeeded';

-- Jobs that used up their attempts (or failed permanently): visible and retryable by operators.
CREATE TABLE job_dead_letters (
    job_id UUID PRIMARY KEY,
    queue VARCHAR(50) NOT NULL,
    kind VARCHAR(100) NOT NULL,
    args JSONB NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL,
    enqueued_at TIMESTAMPTZ NOT NULL,
    died_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    -- Set when an operator retries it; the row stays as history until the retry dies again or is deleted.
    retried_at TIMESTAMPTZ
);
CREATE INDEX idx_job_dead_letters_open ON job_dead_letters (queue, died_at DESC) WHERE retried_at IS NULL;

-- One row per schedule and tick: the unique key makes every tick run once however many schedulers run.
CREATE TABLE cron_runs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    schedule VARCHAR(100) NOT NULL,
    -- The tick as wall-clock time in the schedule's zone (unique: a repeated hour in autumn runs once) …
    tick_local TIMESTAMP NOT NULL,
    -- … and as the instant it was due.
    tick_at TIMESTAMPTZ NOT NULL,
    -- How many due ticks this run stands for (> 1 after downtime: missed ticks are coalesced).
    coalesced INTEGER NOT NULL DEFAULT 1,
    manual BOOLEAN NOT NULL DEFAULT FALSE,
    job_id UUID NOT NULL,
    scheduler VARCHAR(200) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT uq_cron_runs_tick UNIQUE (schedule, tick_local, manual)
);
CREATE INDEX idx_cron_runs_schedule ON cron_runs (schedule, tick_at DESC);

-- The effect of the diagnostic `bench` job when asked to leave one: at most one row per mark, however
-- often the job runs (tests use it to prove exactly-once effects under at-least-once delivery).
CREATE TABLE bench_marks (
    mark VARCHAR(200) PRIMARY KEY,
    job_id UUID NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
