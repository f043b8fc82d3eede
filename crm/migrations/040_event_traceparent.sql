-- The W3C traceparent of the span that recorded an event (an HTTP request, an activity), when
-- tracing is on: the dispatcher, later and in another process, starts its span as that span's
-- child, so one trace runs from the request through dispatch into the journey's run.
ALTER TABLE events ADD COLUMN traceparent text;
