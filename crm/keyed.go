package crm

import "github.com/cairnhq/cairn/journey"

// eventWhere writes the containment test of an event-like test's where, with its keyed
// values ({cart_id: {trigger: cart_id}}) resolved from Env.Trigger. When the trigger lacks a
// keyed property, no row can equal it: the test counts none (so at_least fails and not holds).
func (b *sqlBuilder) eventWhere(col, what string, e *journey.EventTest) (string, error) {
	where, ok := e.Resolved(b.env.Trigger)
	if !ok {
		return " AND false", nil
	}
	return b.containment(col, what, where)
}
