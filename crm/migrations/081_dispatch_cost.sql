-- The event path's cost per event (issue 16).

-- events_pending (019) took over from events_undispatched: no query reads the older index any
-- more, and every insert and every dispatch paid for keeping it.
DROP INDEX IF EXISTS events_undispatched;
