-- Deals created in another CRM carry that system's id, so its stage changes update one row.
ALTER TABLE deals ADD COLUMN external_id text;
CREATE UNIQUE INDEX deals_external_id ON deals (external_id) WHERE external_id IS NOT NULL;
