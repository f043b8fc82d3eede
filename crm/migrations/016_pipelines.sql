-- Pipelines and their ordered stages: deals keep their pipeline and stage as text, and any
-- pipeline or stage a deal names is created here (appended last), so nothing accepted is
-- lost and the order is there for "stage at least" questions.
CREATE TABLE pipelines (
    id         text PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stages (
    pipeline_id text NOT NULL REFERENCES pipelines (id),
    id          text NOT NULL,
    name        text NOT NULL DEFAULT '',
    position    int NOT NULL,
    PRIMARY KEY (pipeline_id, id),
    -- One stage per place: the order is total.
    UNIQUE (pipeline_id, position)
);

-- Deals written before: their pipelines, and their stages in the order they first appeared.
INSERT INTO pipelines (id) SELECT DISTINCT pipeline FROM deals;
INSERT INTO stages (pipeline_id, id, position)
SELECT pipeline, stage, row_number() OVER (PARTITION BY pipeline ORDER BY min(created_at), stage)
FROM deals GROUP BY pipeline, stage;
