-- Field-equals segments ("plan is pro") compile to traits @> {"plan": "pro"}: this index
-- answers them without reading every contact.
CREATE INDEX contacts_traits ON contacts USING gin (traits jsonb_path_ops);
