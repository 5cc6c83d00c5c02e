ALTER TABLE reminder_schedules DROP CONSTRAINT IF EXISTS valid_day_of_month, DROP COLUMN IF EXISTS day_of_month;
DROP TABLE IF EXISTS email_suppressions;
ALTER TABLE email_deliveries
    DROP CONSTRAINT IF EXISTS sending_has_lease,
    DROP COLUMN IF EXISTS job_generation,
    DROP COLUMN IF EXISTS lease_until;
