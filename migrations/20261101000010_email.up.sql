-- E-mail sending: the delivery lease, unsubscriptions, and the anchor of monthly reminders.

-- A claimed delivery (`sending`) belongs to the job that claimed it until `lease_until`; a crashed
-- sender's delivery is claimed again after that. `job_generation` is the generation of the job that
-- claimed it last: a `failed` delivery is claimed again only by a newer generation (an operator's retry
-- of the dead job in /ops), never by a duplicate of the job that failed it.
ALTER TABLE email_deliveries
    ADD COLUMN lease_until TIMESTAMPTZ,
    ADD COLUMN job_generation INTEGER NOT NULL DEFAULT 0,
    ADD CONSTRAINT sending_has_lease CHECK (status <> 'sending' OR lease_until IS NOT NULL);

-- Recipients who unsubscribed from a category of non-transactional e-mail (today: 'reminders').
-- Deliveries of that category are written as `suppressed` and never sent.
CREATE TABLE email_suppressions (
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    category VARCHAR(30) NOT NULL,
    -- 'link' (the page behind the unsubscribe link), 'one_click' (RFC 8058 List-Unsubscribe-Post).
    source VARCHAR(30) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (user_id, category),
    CONSTRAINT valid_suppression_category CHECK (category IN ('reminders')),
    CONSTRAINT valid_suppression_source CHECK (source IN ('link', 'one_click', 'operator'))
);

-- Monthly reminders keep their day of the month across short months (31 → Feb 28 → Mar 31).
ALTER TABLE reminder_schedules
    ADD COLUMN day_of_month SMALLINT,
    ADD CONSTRAINT valid_day_of_month CHECK (day_of_month BETWEEN 1 AND 31);

-- The minute sweep's look-up of due `queued` deliveries uses idx_email_deliveries_status (status,
-- scheduled_for) from …09, and due reminders idx_reminder_schedules_due from …04: no new index.
