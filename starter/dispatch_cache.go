package starter

import (
	"context"
	"errors"

	"github.com/cairnhq/cairn/crm"
)

// requestedJourney is the newest version of a journey a start_journey step, the API or a
// campaign asks for (nil when there is none), remembered like the triggers: a campaign's
// entries ask for the same journey thousands of times a second.
func (c *batchCache) requestedJourney(ctx context.Context, id string) (*crm.JourneyVersion, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.requested[id]; ok {
		return v, nil
	}
	v, err := crm.JourneyByID(ctx, c.db, id, 0)
	if err != nil && !isNotFound(err) {
		return nil, err
	}
	if c.requested == nil {
		c.requested = map[string]*crm.JourneyVersion{}
	}
	c.requested[id] = v
	return v, nil
}

func isNotFound(err error) bool { return errors.Is(err, crm.ErrNotFound) }
