package crm

import "github.com/cairnhq/cairn/journey"

// object counts the contact's records of the type whose fields contain where (keyed values
// resolved from the trigger) and pass every field test: "at least one" without a count. A
// field test reads the record's field by the same rules as a contact's trait.
func (b *sqlBuilder) object(o *journey.ObjectTest) (string, error) {
	cond := "r.type = " + b.arg(o.Type) + "::text"
	where, ok := o.Resolved(b.env.Trigger)
	if !ok {
		cond += " AND false"
	} else {
		w, err := b.containment("r.fields", "object "+o.Type, where)
		if err != nil {
			return "", err
		}
		cond += w
	}
	for i := range o.Fields {
		f := &o.Fields[i]
		raw := "(r.fields -> " + b.arg(f.Name) + "::text)"
		p, err := b.valueTest(f, raw, "cairn_text"+raw)
		if err != nil {
			return "", err
		}
		cond += " AND " + p
	}
	return b.counted("object_records", "r", cond, o.Counts()), nil
}
