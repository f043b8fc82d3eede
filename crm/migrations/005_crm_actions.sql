-- Lists a contact can subscribe to; unsubscribing keeps the row with its status.
CREATE TABLE list_subscriptions (
    contact_id bigint NOT NULL REFERENCES contacts (id),
    list       text NOT NULL,
    status     text NOT NULL CHECK (status IN ('subscribed', 'unsubscribed')),
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, list)
);
-- "Who is subscribed to list L" for segments.
CREATE INDEX list_subscriptions_list ON list_subscriptions (list, status);

CREATE TABLE score_changes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    name       text NOT NULL DEFAULT '',
    delta      numeric NOT NULL,
    old_value  numeric NOT NULL,
    new_value  numeric NOT NULL,
    reason     text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
-- A contact's recent score reasons, newest first, for the profile.
CREATE INDEX score_changes_contact ON score_changes (contact_id, at DESC);

CREATE TABLE deals (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    title      text NOT NULL,
    pipeline   text NOT NULL,
    stage      text NOT NULL,
    value      numeric NOT NULL DEFAULT 0,
    currency   text NOT NULL DEFAULT '',
    owner      text NOT NULL DEFAULT '',
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- "Deal in stage S" conditions and a contact's open deal in a pipeline.
CREATE INDEX deals_contact_pipeline ON deals (contact_id, pipeline, status);
CREATE INDEX deals_stage ON deals (pipeline, stage) WHERE status = 'open';

CREATE TABLE deal_stage_changes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deal_id    bigint NOT NULL REFERENCES deals (id),
    from_stage text,
    to_stage   text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    title      text NOT NULL,
    assignee   text NOT NULL,
    due_at     timestamptz,
    done_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- "Has open task" conditions and a rep's task list.
CREATE INDEX tasks_open ON tasks (contact_id) WHERE done_at IS NULL;

CREATE TABLE notes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
