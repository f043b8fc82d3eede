-- The event path for many replicas: dispatch as claim → decide → call → mark, with a contact's
-- events taken by one dispatcher at a time, oldest first, and failures isolated per contact.

-- Attempts and the last error of an event whose dispatch failed; failed_at dead-letters it
-- (GET /v1/events?status=failed, POST /v1/events/{id}/retry). changed lists the contact fields
-- the event changed (traits, profile columns), so conditions on fields hear it.
ALTER TABLE events
    ADD COLUMN attempts   int NOT NULL DEFAULT 0,
    ADD COLUMN last_error text,
    ADD COLUMN failed_at  timestamptz,
    ADD COLUMN changed    text[] NOT NULL DEFAULT '{}';

-- The work queue holds only events still to dispatch: the oldest first, and one contact's in order.
DROP INDEX events_undispatched;
CREATE INDEX events_pending ON events (id) WHERE dispatched_at IS NULL AND failed_at IS NULL;
CREATE INDEX events_pending_contact ON events (contact_id, id) WHERE dispatched_at IS NULL AND failed_at IS NULL;
CREATE INDEX events_failed ON events (id) WHERE failed_at IS NOT NULL;

-- Who dispatches a contact's events now. A row with an owner is held by that dispatcher until
-- expires_at (renewed while it works); a row without one is the contact's backoff after a
-- failure. Nobody claims a contact before its row expires; an expired row is free to take.
-- recovered says the lease was taken over from a dispatcher that stopped renewing it: its
-- calls may have gone through unrecorded, so the new holder checks before starting runs.
CREATE TABLE dispatch_leases (
    contact_id bigint PRIMARY KEY REFERENCES contacts (id),
    owner      text,
    expires_at timestamptz NOT NULL,
    recovered  boolean NOT NULL DEFAULT false
);

-- Every id a contact was known by besides its current one (an anonymous id before alias), so
-- events under an old id reach the same contact and its runs are findable by any of them.
CREATE TABLE contact_aliases (
    alias      text PRIMARY KEY,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_aliases_contact ON contact_aliases (contact_id);

-- The event that last reached each enrollment through its trigger: a retried dispatch of that
-- event knows the start already happened.
ALTER TABLE enrollments ADD COLUMN event_id bigint;
