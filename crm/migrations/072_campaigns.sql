-- Campaigns: a segment, the journey its members enter (for a single message, the generated
-- journey campaign.<id>) and a schedule (definition), fired by a Temporal Schedule. paused
-- stops further entries and firings.
CREATE TABLE campaigns (
    id         text PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    segment_id text NOT NULL REFERENCES segments (id),
    journey_id text NOT NULL REFERENCES journeys (id),
    definition jsonb NOT NULL,
    document   text NOT NULL,
    paused     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per firing, keyed by the firing workflow's ID (campaign:<id>-<time>), written by its
-- first activity; members is the segment's size when it fired.
CREATE TABLE campaign_firings (
    id          text PRIMARY KEY,
    campaign_id text NOT NULL REFERENCES campaigns (id),
    journey_id  text NOT NULL,
    started_at  timestamptz NOT NULL,
    members     bigint NOT NULL DEFAULT 0,
    finished_at timestamptz
);
CREATE INDEX campaign_firings_campaign ON campaign_firings (campaign_id, started_at DESC);

-- The segment's members at the firing (taken in one statement), each with the
-- campaign_entered event recorded for it once it has entered: a member enters once per firing
-- whatever is retried or resumed.
CREATE TABLE campaign_members (
    firing_id  text NOT NULL REFERENCES campaign_firings (id),
    contact_id bigint NOT NULL REFERENCES contacts (id),
    event_id   bigint,
    PRIMARY KEY (firing_id, contact_id)
);
CREATE INDEX campaign_members_waiting ON campaign_members (firing_id, contact_id) WHERE event_id IS NULL;
CREATE INDEX campaign_members_contact ON campaign_members (contact_id);
CREATE INDEX campaign_members_event ON campaign_members (event_id);
