package journey_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairnhq/cairn/journey"
)

// FuzzDecode: no input makes the decoder panic, and whatever it accepts survives a JSON
// round trip (the form a run carries) and validates again.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("../examples/*.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("id: j\ntrigger: {event: e}\nsteps: [{goto: {step: j, max: 0}}]"))
	f.Add([]byte(`{"id":"j","trigger":{"event":"e"},"steps":[{"split":[{"percent":50,"steps":[]},{"percent":50}]}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		j, err := journey.Decode(doc)
		if err != nil {
			if _, ok := err.(*journey.ValidationError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		b, err := json.Marshal(j)
		if err != nil {
			t.Fatalf("marshal accepted journey: %v", err)
		}
		var back journey.Journey
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal accepted journey: %v\n%s", err, b)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("accepted journey no longer validates after a round trip: %v\n%s", err, b)
		}
	})
}
