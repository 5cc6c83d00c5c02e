-- An operator's resend of an e-mail (`POST /ops/customers/{id}/emails/{delivery}/resend`) is a new
-- delivery (dedupe key `resend:<original id>`, so the same resend twice is one delivery) that names the
-- delivery it repeats. Kept when the original goes.
ALTER TABLE email_deliveries
    ADD COLUMN resent_from UUID REFERENCES email_deliveries(id) ON DELETE SET NULL;
