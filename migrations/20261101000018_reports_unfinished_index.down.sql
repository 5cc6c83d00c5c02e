DROP INDEX IF EXISTS idx_reports_unfinished;
