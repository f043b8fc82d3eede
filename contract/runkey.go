package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// A journey with a key (`key: cart_id`) has one open run per contact and value of that
// property of the trigger event: a contact with two abandoned carts is in the cart journey
// twice, once per cart. Such a run's workflow ID ends in its run key,
// journey:<journeyID>:<contactID>:<runKey>. The run key is a hash of the value, never the
// value itself: workflow IDs are stored and shown unencrypted, and a property may hold
// personal data.

// RunKey is the run key of a trigger property's value: "k" and 16 hex digits of the SHA-256
// of its JSON, or "" when the event has no such value (the run is then the contact's one
// run of the journey without a key).
func RunKey(value any) string {
	if value == nil {
		return ""
	}
	if s, ok := value.(string); ok && strings.TrimSpace(s) == "" {
		return ""
	}
	b, err := json.Marshal(value)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return "k" + hex.EncodeToString(sum[:8])
}

// KeyedWorkflowID is the run of a journey for a contact and run key (WorkflowID when the
// run key is "").
func KeyedWorkflowID(journeyID string, contactID int64, runKey string) string {
	if runKey == "" {
		return WorkflowID(journeyID, contactID)
	}
	return fmt.Sprintf("journey:%s:%d:%s", journeyID, contactID, runKey)
}

// trimRunKey takes the run key off a keyed run's workflow ID.
func trimRunKey(id string) string {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return id
	}
	last := id[i+1:]
	if len(last) != 17 || last[0] != 'k' {
		return id
	}
	if _, err := hex.DecodeString(last[1:]); err != nil {
		return id
	}
	return id[:i]
}
