-- Segments: saved conditions.
CREATE TABLE segments (
    id         text PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    condition  jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Who is in a segment that a journey triggers on, as last seen: entering is the change from
-- absent to present, detected as events arrive (and hourly for time-based conditions).
CREATE TABLE segment_members (
    segment_id text NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    entered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, contact_id)
);
-- A contact's segments, for its profile and for re-checks on its events.
CREATE INDEX segment_members_contact ON segment_members (contact_id);
