-- Lead scores: one row per contact per named score ('' is the default score).
CREATE TABLE contact_scores (
    contact_id bigint NOT NULL REFERENCES contacts (id),
    name       text NOT NULL DEFAULT '',
    value      numeric NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, name)
);
-- "Scores between X and Y" segments scan by value, not by contact.
CREATE INDEX contact_scores_value ON contact_scores (name, value);

-- Event tests ask "did contact C do event N (in a window)": one index range per question.
CREATE INDEX events_contact_name_time ON events (contact_id, name, occurred_at);

-- Field tests read traits as numbers and times without failing on values of another type:
-- a trait that is not a number is simply not greater than 5.
CREATE FUNCTION cairn_num(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN jsonb_typeof(v) = 'number' THEN (v #>> '{}')::numeric
        WHEN jsonb_typeof(v) = 'string' AND (v #>> '{}') ~ '^\s*-?[0-9]+(\.[0-9]+)?\s*$' THEN (v #>> '{}')::numeric
    END
$$;

CREATE FUNCTION cairn_time(v jsonb) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' THEN
        RETURN NULL;
    END IF;
    RETURN (v #>> '{}')::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
