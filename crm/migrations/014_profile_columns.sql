-- Phone, name, time zone, location and device become real columns: segments ask "country is
-- PT" of every contact, and a column (with an index) answers that without reading traits.
ALTER TABLE contacts
    ADD COLUMN phone       text,
    ADD COLUMN first_name  text,
    ADD COLUMN last_name   text,
    ADD COLUMN timezone    text,
    ADD COLUMN country     text,
    ADD COLUMN region      text,
    ADD COLUMN city        text,
    ADD COLUMN device_type text;

-- A trait as text when it is a non-blank string or a number; anything else counts as absent.
CREATE FUNCTION cairn_text(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(v) IN ('string', 'number') THEN NULLIF(btrim(v #>> '{}'), '') END
$$;

-- The first trait set at one of paths (dotted, e.g. address.country). With none set, a trait
-- that was set before and is now blank clears the column; otherwise the column keeps what it
-- has (a value the sending system observed, or an older one): absence never blanks it.
CREATE FUNCTION cairn_profile_value(new_traits jsonb, old_traits jsonb, current text, VARIADIC paths text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    p text;
    v text;
BEGIN
    FOREACH p IN ARRAY paths LOOP
        v := cairn_text(new_traits #> string_to_array(p, '.'));
        IF v IS NOT NULL THEN
            RETURN v;
        END IF;
    END LOOP;
    FOREACH p IN ARRAY paths LOOP
        IF cairn_text(old_traits #> string_to_array(p, '.')) IS NOT NULL THEN
            RETURN NULL;
        END IF;
    END LOOP;
    RETURN current;
END
$$;

-- Traits win over what a sending system observed (Segment's context): every writer of traits
-- (events, update_fields, forms, imports) keeps the columns in step through this one trigger,
-- so a field test on a column never disagrees with the traits it came from.
CREATE FUNCTION cairn_contact_profile() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_traits jsonb := '{}';
BEGIN
    IF TG_OP = 'UPDATE' THEN
        old_traits := OLD.traits;
    END IF;
    NEW.phone       := cairn_profile_value(NEW.traits, old_traits, NEW.phone, 'phone');
    NEW.first_name  := cairn_profile_value(NEW.traits, old_traits, NEW.first_name, 'first_name', 'firstName');
    NEW.last_name   := cairn_profile_value(NEW.traits, old_traits, NEW.last_name, 'last_name', 'lastName');
    NEW.timezone    := cairn_profile_value(NEW.traits, old_traits, NEW.timezone, 'timezone');
    NEW.country     := cairn_profile_value(NEW.traits, old_traits, NEW.country, 'country', 'address.country');
    NEW.region      := cairn_profile_value(NEW.traits, old_traits, NEW.region, 'region', 'address.state', 'address.region');
    NEW.city        := cairn_profile_value(NEW.traits, old_traits, NEW.city, 'city', 'address.city');
    NEW.device_type := cairn_profile_value(NEW.traits, old_traits, NEW.device_type, 'device_type');
    RETURN NEW;
END
$$;

-- Only writes that set traits need it: a score change or an unsubscribe does not pay for it.
CREATE TRIGGER contacts_profile BEFORE INSERT OR UPDATE OF traits ON contacts
    FOR EACH ROW EXECUTE FUNCTION cairn_contact_profile();

-- Backfill: rewriting traits runs the trigger on every existing contact.
UPDATE contacts SET traits = traits;

-- "Country is PT" is the location segment marketers build first; equality on the built-in
-- columns ignores case (pt, PT), so the index is on lower(country). Region, city and device
-- are either too fine or too coarse to be worth an index of their own yet.
CREATE INDEX contacts_country ON contacts (lower(country));
