DROP INDEX IF EXISTS idx_team_members_member_user;
