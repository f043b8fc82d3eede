-- Defined text and number fields get a typed column of their own on contacts, generated from
-- traits by PostgreSQL, and an index on (that column, score): a segment on the field, or on the
-- field and the score (how leads are qualified), then reads that index alone instead of
-- every contact's traits (BENCHMARKS.md). column_name is NULL for types kept only in traits.
ALTER TABLE field_definitions ADD COLUMN column_name text UNIQUE;
