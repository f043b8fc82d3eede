-- Numbers in traits are read as numbers when at most 100 characters long: a longer "number" is
-- no one's age or revenue, and its index entry could outgrow btree's row limit.
CREATE FUNCTION cairn_number(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN length(v #>> '{}') <= 100 THEN cairn_num(v) END
$$;

-- A btree index row holds at most 2,704 bytes, so a contact whose country was a 3,000-byte
-- trait could not be written at all. The index holds the first 500 characters (2,000 bytes at
-- most); equality compares the column in full after it.
DROP INDEX contacts_country;
CREATE INDEX contacts_country ON contacts (left(lower(country), 500));

-- Field columns change form: a text field's column holds its text lower-cased and cut to 500
-- characters (case is ignored, and the index row stays small), a number field's column reads
-- numbers with cairn_number, and a field keeps a column per type it has had instead of trading
-- one column for another at each retype: PostgreSQL never gives back a dropped column's slot
-- of its 1,600, so field definitions failed for good after about 1,570 retypes. The old columns
-- go now; Migrate adds the new ones (one rewrite of contacts per text or number field).
DO $$
DECLARE
    c text;
BEGIN
    FOR c IN SELECT column_name FROM field_definitions WHERE column_name IS NOT NULL LOOP
        EXECUTE format('ALTER TABLE contacts DROP COLUMN IF EXISTS %I', c);
    END LOOP;
END
$$;
ALTER TABLE field_definitions
    DROP COLUMN column_name,
    ADD COLUMN text_column text UNIQUE,
    ADD COLUMN number_column text UNIQUE;
