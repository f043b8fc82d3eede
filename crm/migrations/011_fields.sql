-- Custom field definitions. Once any is defined, conditions may only test defined fields
-- (and the built-in ones), with operators that suit their type.
CREATE TABLE field_definitions (
    name       text PRIMARY KEY,
    type       text NOT NULL CHECK (type IN ('text', 'number', 'date', 'boolean')),
    label      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
