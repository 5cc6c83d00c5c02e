-- Team invitations: a single-use token per invitation (only its SHA-256 is stored; the token itself
-- travels only in the invitation e-mail), its expiry, who sent it, and how many invitations the row
-- has had (the e-mail's dedupe key, so a resend is a new e-mail and a retried request is not).
ALTER TABLE team_members
    ADD COLUMN invitation_token_hash VARCHAR(64),
    ADD COLUMN invitation_expires_at TIMESTAMPTZ,
    ADD COLUMN invited_by UUID REFERENCES users(id) ON DELETE SET NULL,
    ADD COLUMN invitations_sent INTEGER NOT NULL DEFAULT 0,
    ADD CONSTRAINT valid_invitations_sent CHECK (invitations_sent >= 0),
    ADD CONSTRAINT valid_invitation_token_hash
        CHECK (invitation_token_hash IS NULL OR invitation_token_hash ~ '^[0-9a-f]{64}$');

-- Accepting looks the invitation up by the hash of the presented token.
CREATE UNIQUE INDEX idx_team_members_invitation_token ON team_members (invitation_token_hash)
    WHERE invitation_token_hash IS NOT NULL;

-- One membership per user and team (an account accepts one invitation of a team), and the look-up of
-- every `/v1` call that acts for a team owner (`Mingus-Account`).
CREATE UNIQUE INDEX idx_team_members_owner_member ON team_members (team_owner_id, member_user_id)
    WHERE member_user_id IS NOT NULL;
