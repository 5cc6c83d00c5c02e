-- Row-level security: the mingus_app role sees and changes only the rows of auth.uid().
-- Billing tables are read-only for it (workers write them); users may not grant themselves anything.
-- Tables are not FORCEd, so the owner role (migrations, workers) keeps seeing every row.

ALTER TABLE user_profiles ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_profiles_owner ON user_profiles FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON user_profiles TO mingus_app;

ALTER TABLE user_health_checkins ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_health_checkins_owner ON user_health_checkins FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON user_health_checkins TO mingus_app;

ALTER TABLE financial_questionnaire_submissions ENABLE ROW LEVEL SECURITY;
CREATE POLICY financial_questionnaire_submissions_owner ON financial_questionnaire_submissions FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON financial_questionnaire_submissions TO mingus_app;

ALTER TABLE reminder_schedules ENABLE ROW LEVEL SECURITY;
CREATE POLICY reminder_schedules_owner ON reminder_schedules FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON reminder_schedules TO mingus_app;

ALTER TABLE verification_analytics ENABLE ROW LEVEL SECURITY;
CREATE POLICY verification_analytics_owner ON verification_analytics FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON verification_analytics TO mingus_app;

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_keys_owner ON api_keys FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO mingus_app;

ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY subscriptions_owner ON subscriptions FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT ON subscriptions TO mingus_app;

ALTER TABLE billing_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY billing_history_owner ON billing_history FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT ON billing_history TO mingus_app;

ALTER TABLE feature_access ENABLE ROW LEVEL SECURITY;
CREATE POLICY feature_access_owner ON feature_access FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT ON feature_access TO mingus_app;

ALTER TABLE user_analytics ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_analytics_owner ON user_analytics FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT ON user_analytics TO mingus_app;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_self ON users FOR ALL USING (id = auth.uid()) WITH CHECK (id = auth.uid());
GRANT SELECT, UPDATE (full_name, phone_number, updated_at) ON users TO mingus_app;

-- The team owner manages the team; an accepted member sees their own membership.
ALTER TABLE team_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY team_members_owner ON team_members FOR ALL USING (team_owner_id = auth.uid()) WITH CHECK (team_owner_id = auth.uid());
CREATE POLICY team_members_member ON team_members FOR SELECT USING (member_user_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON team_members TO mingus_app;

-- The catalogue is public to every signed-in user.
GRANT SELECT ON pricing_tiers TO mingus_app;
