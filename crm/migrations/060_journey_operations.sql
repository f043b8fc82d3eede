-- Operating journeys: archiving, every run's entry (for a journey's counts), which journey and
-- step each email came from, and migrations of runs in flight to a newer version.

-- An archived journey starts no runs (and takes no new version) until it is unarchived.
ALTER TABLE journeys ADD COLUMN archived_at timestamptz;

-- Every run a journey started, one row per run (the first run id of its continue-as-new
-- chain), and how it ended: a journey's entered, completed and exited counts. enrollments keeps
-- only a contact's last run of each journey, for routing.
CREATE TABLE journey_entries (
    journey_id text NOT NULL REFERENCES journeys (id),
    run_id     text NOT NULL,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    version    int,
    entered_at timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    -- running, completed, exited, failed, cancelled, or ended (closed without saying how:
    -- terminated by hand)
    status     text NOT NULL DEFAULT 'running',
    PRIMARY KEY (journey_id, run_id)
);
CREATE INDEX journey_entries_contact ON journey_entries (contact_id);

-- Runs before this migration: each contact's last run of each journey is all that was kept.
INSERT INTO journey_entries (journey_id, run_id, contact_id, version, entered_at, ended_at, status)
SELECT en.journey_id, en.run_id, en.contact_id, en.version, en.entered_at, en.ended_at,
       CASE WHEN en.ended_at IS NULL THEN 'running'
            ELSE COALESCE((SELECT substring(ev.name FROM 9) FROM events ev
                           WHERE ev.dedupe_key = 'end:' || en.journey_id || ':' || en.contact_id || ':' || en.run_id), 'ended') END
FROM enrollments en
ON CONFLICT DO NOTHING;

-- The journey and step an email was sent from, read from its idempotency key
-- (journey:<journey>:<contact>/<run>/<step>/<visit>), for per-step counts.
ALTER TABLE email_messages
    ADD COLUMN journey_id text GENERATED ALWAYS AS (
        CASE WHEN idempotency_key LIKE 'journey:%' THEN split_part(split_part(idempotency_key, '/', 1), ':', 2) END) STORED,
    ADD COLUMN step_id text GENERATED ALWAYS AS (
        CASE WHEN idempotency_key LIKE 'journey:%' THEN split_part(idempotency_key, '/', 3) END) STORED;
CREATE INDEX email_messages_journey_step ON email_messages (journey_id, step_id) WHERE journey_id IS NOT NULL;

-- A migration of a journey's runs in flight from one version to another: the map of steps,
-- and how far applying it got (it can be resumed).
CREATE TABLE journey_migrations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    journey_id   text NOT NULL REFERENCES journeys (id),
    from_version int NOT NULL,
    to_version   int NOT NULL,
    step_map     jsonb NOT NULL,
    default_step text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    -- runs found on the from version at a mapped step, signalled so far, and refused signals
    found        int NOT NULL DEFAULT 0,
    signalled    int NOT NULL DEFAULT 0,
    failed       int NOT NULL DEFAULT 0,
    last_error   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX journey_migrations_journey ON journey_migrations (journey_id, id);
