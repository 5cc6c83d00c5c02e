-- A user's own memberships (`GET /v1/team/memberships`): the unique (owner, member) index leads with the
-- owner, so it cannot answer "which teams is this user in".
CREATE INDEX idx_team_members_member_user ON team_members (member_user_id) WHERE status = 'active';
