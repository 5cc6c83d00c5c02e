ALTER TABLE team_members DROP CONSTRAINT IF EXISTS analytics_shared_by_active_member;
ALTER TABLE team_members DROP COLUMN IF EXISTS analytics_shared_at;
