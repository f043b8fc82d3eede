-- Contacts: one row per person, found by the id the sending system knows them by.
CREATE TABLE contacts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Segment userId, or "anon:" + anonymousId before a user is identified.
    external_id text NOT NULL UNIQUE,
    email       text,
    traits      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Everything that happens to a contact, append-only. The dispatcher reads it in id order.
CREATE TABLE events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id    bigint NOT NULL REFERENCES contacts (id),
    name          text NOT NULL,
    properties    jsonb NOT NULL DEFAULT '{}',
    source        text NOT NULL,
    -- Source-scoped key (e.g. "segment:" + messageId, or an action's idempotency key):
    -- a repeated delivery inserts nothing.
    dedupe_key    text UNIQUE,
    occurred_at   timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
-- The dispatcher's work queue: partial, so it holds only events not yet dispatched and stays
-- small however long the log grows.
CREATE INDEX events_undispatched ON events (id) WHERE dispatched_at IS NULL;
-- A contact's history in time order: profile pages and "did X within N days" checks.
CREATE INDEX events_contact_time ON events (contact_id, occurred_at);

-- Current tags; history of adds and removes is kept in tag_changes.
CREATE TABLE contact_tags (
    contact_id bigint NOT NULL REFERENCES contacts (id),
    tag        text NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, tag)
);
-- "Which contacts have tag T" without scanning every contact's tags.
CREATE INDEX contact_tags_tag ON contact_tags (tag);

CREATE TABLE tag_changes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    tag        text NOT NULL,
    change     text NOT NULL CHECK (change IN ('added', 'removed')),
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tag_changes_contact ON tag_changes (contact_id, at);

-- Every effect a journey step has, keyed by workflow ID + run + step + occurrence: an
-- activity retried after a crash finds its row and returns the first result.
CREATE TABLE action_ledger (
    idempotency_key text PRIMARY KEY,
    action          text NOT NULL,
    contact_id      bigint NOT NULL REFERENCES contacts (id),
    result          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Emails a journey has asked to send; a sender delivers them over SMTP.
CREATE TABLE email_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    contact_id      bigint NOT NULL REFERENCES contacts (id),
    template        text NOT NULL,
    to_address      text NOT NULL,
    status          text NOT NULL DEFAULT 'queued',
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE journeys (
    id         text PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Immutable versions: a run keeps the version it started with.
CREATE TABLE journey_versions (
    journey_id text NOT NULL REFERENCES journeys (id),
    version    int NOT NULL,
    definition jsonb NOT NULL,
    -- sha256 of the normalised definition: re-applying the same document makes no version.
    digest     text NOT NULL,
    document   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey_id, version)
);
-- Trigger matching looks journeys up by event name on every dispatched event.
CREATE INDEX journey_versions_trigger ON journey_versions ((definition -> 'trigger' ->> 'event'));
