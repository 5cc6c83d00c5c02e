ALTER TABLE email_deliveries DROP COLUMN IF EXISTS resent_from;
