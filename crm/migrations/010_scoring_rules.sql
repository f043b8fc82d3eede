-- Lead scoring rules: an event (with property values) is worth points on a score, at most
-- cap points per period, and the points stop counting after expires_after.
CREATE TABLE scoring_rules (
    id                    text PRIMARY KEY,
    score                 text NOT NULL DEFAULT '',
    event                 text NOT NULL,
    "where"               jsonb NOT NULL DEFAULT '{}',
    points                numeric NOT NULL,
    cap                   numeric,
    cap_period_seconds    bigint,
    expires_after_seconds bigint,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- Every recorded event looks up the rules for its name.
CREATE INDEX scoring_rules_event ON scoring_rules (event);

-- Which rule awarded a change, and when its points expire (expired once taken back).
ALTER TABLE score_changes ADD COLUMN rule_id text;
ALTER TABLE score_changes ADD COLUMN expires_at timestamptz;
ALTER TABLE score_changes ADD COLUMN expired boolean NOT NULL DEFAULT false;
-- Caps sum a rule's recent awards per contact; expiry finds awards past their time.
CREATE INDEX score_changes_rule ON score_changes (contact_id, rule_id, at) WHERE rule_id IS NOT NULL;
CREATE INDEX score_changes_expiry ON score_changes (expires_at) WHERE expires_at IS NOT NULL AND NOT expired;
