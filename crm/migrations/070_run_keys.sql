-- A journey with a key (`key: cart_id`) has one run per contact and value of that property of
-- its trigger; its enrollments are kept per run key (a hash of the value, as in the run's
-- workflow ID). '' is the contact's one run of a journey without a key, as before.
ALTER TABLE enrollments ADD COLUMN run_key text NOT NULL DEFAULT '';
ALTER TABLE enrollments DROP CONSTRAINT enrollments_pkey;
ALTER TABLE enrollments ADD PRIMARY KEY (journey_id, contact_id, run_key);
