-- The unfinished reports (queued or running), for the sweep that fails reports whose job ended without
-- recording an outcome. Partial: it holds only the few reports in flight, not the history.
CREATE INDEX idx_reports_unfinished ON reports (id) WHERE status IN ('queued', 'running');
