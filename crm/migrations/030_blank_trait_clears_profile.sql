-- A trait written blank ("" or null) clears its profile column, also when the value there came
-- from what a sending system observed (Segment's context) rather than from a trait: before, only
-- a trait that had held a value cleared it, so {"country": ""} left an observed country in place.
-- "Written" means changed by this write: a blank trait stored earlier does not blank what is
-- observed later, as an absent one does not.
CREATE OR REPLACE FUNCTION cairn_profile_value(new_traits jsonb, old_traits jsonb, current text, VARIADIC paths text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    p    text;
    path text[];
    v    text;
BEGIN
    FOREACH p IN ARRAY paths LOOP
        v := cairn_text(new_traits #> string_to_array(p, '.'));
        IF v IS NOT NULL THEN
            RETURN v;
        END IF;
    END LOOP;
    FOREACH p IN ARRAY paths LOOP
        path := string_to_array(p, '.');
        IF cairn_text(old_traits #> path) IS NOT NULL THEN
            RETURN NULL;
        END IF;
        IF jsonb_typeof(new_traits #> path) IN ('string', 'null')
           AND (new_traits #> path) IS DISTINCT FROM (old_traits #> path) THEN
            RETURN NULL;
        END IF;
    END LOOP;
    RETURN current;
END
$$;
