DROP TABLE IF EXISTS ops_audit_log;
DROP FUNCTION IF EXISTS ops_audit_log_append_only();
DROP TABLE IF EXISTS ops_sessions;
DROP TABLE IF EXISTS ops_operators;
