-- Team members (Executive tier) and API keys.

CREATE TABLE team_members (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    team_owner_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    member_email VARCHAR(255) NOT NULL,
    member_name VARCHAR(255),
    -- The member's own account once the invitation is accepted.
    member_user_id UUID REFERENCES users(id) ON DELETE SET NULL,
    role VARCHAR(50) NOT NULL,
    permissions JSONB NOT NULL DEFAULT '{}'::jsonb,
    invited_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    accepted_at TIMESTAMPTZ,
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    CONSTRAINT valid_role CHECK (role IN ('viewer', 'editor', 'admin')),
    CONSTRAINT valid_status CHECK (status IN ('pending', 'active', 'declined')),
    CONSTRAINT valid_member_email CHECK (member_email ~ '^[^@\s]+@[^@\s]+$')
);
CREATE INDEX idx_team_members_owner_id ON team_members(team_owner_id);
CREATE INDEX idx_team_members_email ON team_members(member_email);
CREATE INDEX idx_team_members_status ON team_members(status);
-- One membership per address and team.
CREATE UNIQUE INDEX idx_team_members_owner_email ON team_members(team_owner_id, lower(member_email));

CREATE TABLE api_keys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_name VARCHAR(100) NOT NULL,
    -- The visible start of the key (e.g. "mk_live_ab12"), shown in listings; the key itself is never stored.
    key_prefix VARCHAR(32) NOT NULL,
    api_key_hash VARCHAR(255) NOT NULL,
    permissions JSONB NOT NULL DEFAULT '[]'::jsonb,
    rate_limit_per_hour INTEGER NOT NULL DEFAULT 1000,
    last_used_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    CONSTRAINT valid_rate_limit CHECK (rate_limit_per_hour BETWEEN 1 AND 1000000),
    CONSTRAINT valid_key_name CHECK (length(trim(key_name)) > 0)
);
CREATE INDEX idx_api_keys_user_id ON api_keys(user_id);
-- Lookups are by hash: unique, so one presented key matches at most one row.
CREATE UNIQUE INDEX idx_api_keys_hash ON api_keys(api_key_hash);
CREATE INDEX idx_api_keys_active ON api_keys(is_active);
