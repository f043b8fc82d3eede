-- Journeys may have several triggers: the dispatcher finds candidates by event name here,
-- then applies each trigger's filters in Go.
ALTER TABLE journey_versions ADD COLUMN trigger_events text[] NOT NULL DEFAULT '{}';

-- Versions stored before triggers became a list.
UPDATE journey_versions
SET definition = jsonb_set(definition, '{triggers}',
        jsonb_build_array(jsonb_build_object('kind', 'event', 'event', definition -> 'trigger' ->> 'event'))) - 'trigger',
    trigger_events = ARRAY[definition -> 'trigger' ->> 'event']
WHERE definition ? 'trigger';

DROP INDEX journey_versions_trigger;
-- Trigger matching on every dispatched event: "which journeys listen for this name".
CREATE INDEX journey_versions_trigger_events ON journey_versions USING gin (trigger_events);
