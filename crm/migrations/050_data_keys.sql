-- The payload codec's data keys (envelope encryption). Each contact's Temporal payloads are
-- encrypted under the contact's own data key; payloads that belong to no contact under the
-- shared one. A data key is stored wrapped (AES-256-GCM) by a key-ring key named in
-- wrapped_by. Erasing a contact destroys its key: wrapped and wrapped_by become NULL and the
-- row stays as a tombstone, so its payloads decode to the "erased" placeholder and no new
-- key is ever made for that contact. No foreign key: the tombstone outlives the contact.
CREATE TABLE data_keys (
    id           text PRIMARY KEY,
    contact_id   bigint UNIQUE,
    shared       boolean NOT NULL DEFAULT false,
    wrapped_by   text,
    wrapped      bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CHECK ((contact_id IS NULL) = shared),
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);
CREATE UNIQUE INDEX data_keys_shared ON data_keys (shared) WHERE shared;
CREATE INDEX data_keys_wrapped_by ON data_keys (wrapped_by);

-- Erasures done (DELETE /v1/contacts/{id}): who asked and when; nothing about the person.
CREATE TABLE erasures (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id   bigint NOT NULL,
    requested_by text NOT NULL,
    reason       text NOT NULL DEFAULT '',
    runs_ended   int NOT NULL DEFAULT 0,
    erased_at    timestamptz NOT NULL
);
