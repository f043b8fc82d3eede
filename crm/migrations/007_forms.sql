-- Form definitions: how a submitted form's fields map to contact fields, and which list and
-- tags a submission subscribes the contact to.
CREATE TABLE forms (
    id         text PRIMARY KEY,
    definition jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
