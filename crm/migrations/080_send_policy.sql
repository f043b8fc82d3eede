-- Send policy, split tests and learned send times (issue 14).

-- The sends frequency caps count: one row per message that took a place, made in the same
-- transaction as the check that allowed it (the contact's row locked, so journeys racing to
-- message one contact are counted one after the other). Released when the send turns out not
-- to happen (a refusal). Transactional sends take none.
CREATE TABLE send_reservations (
    idempotency_key text PRIMARY KEY,
    contact_id      bigint NOT NULL REFERENCES contacts (id),
    channel         text NOT NULL,
    reserved_at     timestamptz NOT NULL
);
CREATE INDEX send_reservations_contact ON send_reservations (contact_id, channel, reserved_at);

-- Sends the policy held back: deferred (until a time) or skipped (if_capped: skip), by rule,
-- for a journey's counts. One row per send and deferral.
CREATE TABLE send_deferrals (
    idempotency_key text NOT NULL,
    until           timestamptz NOT NULL,
    contact_id      bigint NOT NULL REFERENCES contacts (id),
    journey_id      text NOT NULL DEFAULT '',
    step_id         text NOT NULL DEFAULT '',
    channel         text NOT NULL,
    rule            text NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('deferred', 'skipped')),
    at              timestamptz NOT NULL,
    PRIMARY KEY (idempotency_key, until)
);
CREATE INDEX send_deferrals_journey ON send_deferrals (journey_id, step_id);
CREATE INDEX send_deferrals_contact ON send_deferrals (contact_id);

-- A split test's round robin: contacts assigned so far, when the first was, when the results
-- were last judged.
CREATE TABLE split_tests (
    journey_id   text NOT NULL,
    step_id      text NOT NULL,
    assigned     bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL,
    evaluated_at timestamptz,
    PRIMARY KEY (journey_id, step_id)
);

-- Which variant each visit of a split test took (in_test: while the test ran, so it counts in
-- the results; else the winner's), and the run it belongs to: run_key prefixes the
-- idempotency keys of the run's sends, run_id is its chain's first run (goals are recorded by it).
CREATE TABLE split_assignments (
    idempotency_key text PRIMARY KEY,
    journey_id      text NOT NULL,
    step_id         text NOT NULL,
    contact_id      bigint NOT NULL REFERENCES contacts (id),
    run_key         text NOT NULL,
    run_id          text NOT NULL,
    variant         text NOT NULL,
    in_test         boolean NOT NULL,
    assigned_at     timestamptz NOT NULL
);
CREATE INDEX split_assignments_test ON split_assignments (journey_id, step_id, variant) WHERE in_test;
CREATE INDEX split_assignments_contact ON split_assignments (contact_id);

-- A split test's decision, recorded once, with the numbers it was made on.
CREATE TABLE split_decisions (
    journey_id text NOT NULL,
    step_id    text NOT NULL,
    winner     text NOT NULL,
    reason     text NOT NULL,
    numbers    jsonb NOT NULL,
    decided_at timestamptz NOT NULL,
    PRIMARY KEY (journey_id, step_id)
);

-- A contact's messages, for a split test's results (the sends of each assigned run).
CREATE INDEX email_messages_contact ON email_messages (contact_id);
