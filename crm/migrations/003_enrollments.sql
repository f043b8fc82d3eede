-- Events a version's running contacts want to hear (exit and wait_until conditions), so the
-- dispatcher signals only the runs that may care.
ALTER TABLE journey_versions ADD COLUMN interests text[] NOT NULL DEFAULT '{}';

-- Who is in which journey: the dispatcher's routing table (no Temporal visibility query per
-- event). A row is closed when a signal finds its run finished.
CREATE TABLE enrollments (
    journey_id  text NOT NULL REFERENCES journeys (id),
    contact_id  bigint NOT NULL REFERENCES contacts (id),
    version     int NOT NULL,
    workflow_id text NOT NULL,
    run_id      text NOT NULL,
    entered_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    PRIMARY KEY (journey_id, contact_id)
);
-- Routing asks "which open runs does contact C have": only open rows are indexed.
CREATE INDEX enrollments_open ON enrollments (contact_id) WHERE ended_at IS NULL;
