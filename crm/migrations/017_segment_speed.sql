-- Scores move onto the contact as {"name": value} ("" is the default score): a segment that
-- combines fields and scores then reads one row (or one index) per contact instead of hashing
-- a second table of a million rows; BENCHMARKS.md has the figures.
-- A missing key is a score of 0. History stays in score_changes.
ALTER TABLE contacts ADD COLUMN scores jsonb NOT NULL DEFAULT '{}';
UPDATE contacts c SET scores = s.scores
FROM (SELECT contact_id, jsonb_object_agg(name, value) AS scores FROM contact_scores GROUP BY contact_id) s
WHERE s.contact_id = c.id;
DROP TABLE contact_scores;
-- The default score as a plain column, kept by PostgreSQL itself: comparing a number is much
-- cheaper than reading it out of JSON a million times, and its index finds "score ≥ 90"
-- contacts without reading the rest.
ALTER TABLE contacts ADD COLUMN score numeric GENERATED ALWAYS AS (COALESCE((scores -> '')::numeric, 0)) STORED;
CREATE INDEX contacts_score ON contacts (score);

-- Event tests over many contacts ("2 orders in 30 days") read one event name's entries in
-- contact order, so counting per contact streams without a hash, and only this index (no
-- table rows) is read once autovacuum has marked the pages visible. The same index answers
-- one contact's "did N (since T)" with one range, so it replaces (contact_id, name, occurred_at).
CREATE INDEX events_name_contact_time ON events (name, contact_id, occurred_at);
DROP INDEX events_contact_name_time;

-- Index-only scans need the visibility map, which vacuum keeps. An append-only log is vacuumed
-- after inserts of 20% of its size by default, so the newest events (the ones time windows
-- ask about) would mostly be read from the table; vacuum after 1% instead.
ALTER TABLE events SET (autovacuum_vacuum_insert_scale_factor = 0.01);
