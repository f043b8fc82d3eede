-- Custom object types (a subscription, a course enrolment, a vehicle): a JSON Schema of their
-- records, and the events that write records (object_sources, looked up as each event is
-- recorded). Records belong to a contact: the one last written with.
CREATE TABLE object_types (
    id         text PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    schema     jsonb NOT NULL,
    document   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE object_sources (
    event       text NOT NULL,
    type        text NOT NULL REFERENCES object_types (id),
    id_property text NOT NULL,
    PRIMARY KEY (event, type)
);

CREATE TABLE object_records (
    type       text NOT NULL REFERENCES object_types (id),
    id         text NOT NULL,
    contact_id bigint NOT NULL REFERENCES contacts (id),
    fields     jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (type, id)
);
-- Object conditions and templates read a contact's records of a type.
CREATE INDEX object_records_contact ON object_records (contact_id, type);
