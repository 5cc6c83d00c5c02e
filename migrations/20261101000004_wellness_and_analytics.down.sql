DROP TABLE IF EXISTS user_analytics;
DROP TABLE IF EXISTS verification_analytics;
DROP TABLE IF EXISTS reminder_schedules;
DROP TABLE IF EXISTS financial_questionnaire_submissions;
DROP TABLE IF EXISTS user_health_checkins;
