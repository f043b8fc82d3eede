-- Goals met, per run: "goal completed in journey J" conditions read this.
CREATE TABLE goal_completions (
    journey_id text NOT NULL,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    goal_id    text NOT NULL,
    run_id     text NOT NULL,
    met_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey_id, contact_id, goal_id, run_id)
);
-- Conditions ask per contact.
CREATE INDEX goal_completions_contact ON goal_completions (contact_id, journey_id, goal_id);
