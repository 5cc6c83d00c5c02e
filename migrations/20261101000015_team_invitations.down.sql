DROP INDEX IF EXISTS idx_team_members_owner_member;
DROP INDEX IF EXISTS idx_team_members_invitation_token;
ALTER TABLE team_members
    DROP CONSTRAINT IF EXISTS valid_invitation_token_hash,
    DROP CONSTRAINT IF EXISTS valid_invitations_sent,
    DROP COLUMN IF EXISTS invitations_sent,
    DROP COLUMN IF EXISTS invited_by,
    DROP COLUMN IF EXISTS invitation_expires_at,
    DROP COLUMN IF EXISTS invitation_token_hash;
