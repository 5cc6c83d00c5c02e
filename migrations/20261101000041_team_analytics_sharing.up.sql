-- A team member's consent to show their own daily analytics to the team's owner (issue 21,
-- `GET /v1/team/analytics`): NULL = not shared (the default, also after a renewed invitation); set and
-- cleared only by the member (`PUT /v1/team/memberships/{owner_id}/analytics-sharing`).
ALTER TABLE team_members ADD COLUMN analytics_shared_at TIMESTAMPTZ;
-- Only an accepted member can share.
ALTER TABLE team_members ADD CONSTRAINT analytics_shared_by_active_member
    CHECK (analytics_shared_at IS NULL OR status = 'active');
