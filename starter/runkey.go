package starter

import (
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
)

// runKeyOf is the run key an event starts (or reaches) a run of the journey under: for a
// journey with a key, the hash of the trigger's value of that property; "" for a journey
// without one, or an event without the property (the contact's one run without a key).
func runKeyOf(j crm.JourneyVersion, ev crm.Event) string {
	if j.Definition.Key == "" {
		return ""
	}
	return contract.RunKey(ev.Properties[j.Definition.Key])
}
