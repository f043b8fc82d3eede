-- When the dispatcher last asked Temporal whether an enrollment's run is still open: runs that
-- end without telling the CRM (terminated, or failed before recording their end) are closed
-- by that check, so {in_journey: ...} stays true.
ALTER TABLE enrollments ADD COLUMN checked_at timestamptz;
CREATE INDEX enrollments_open_check ON enrollments (checked_at NULLS FIRST) WHERE ended_at IS NULL;
