package journey

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a wait length written the way marketers write it: "30s", "15m", "2h", "1d",
// "2w", or combined ("1d12h"). Days are 24 hours and weeks 7 days.
type Duration struct {
	D time.Duration
}

var units = map[string]time.Duration{
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
	"w":  7 * 24 * time.Hour,
}

// ParseDuration reads a Duration; the error says what is expected.
func ParseDuration(s string) (Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return Duration{}, fmt.Errorf("empty duration")
	}
	var total time.Duration
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		j := i
		for j < len(rest) && rest[j] >= 'a' && rest[j] <= 'z' {
			j++
		}
		unit, ok := units[rest[i:j]]
		if i == 0 || !ok {
			return Duration{}, fmt.Errorf("%q is not a duration (write e.g. 30s, 15m, 2h, 1d, 2w or 1d12h)", s)
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > int64(100*365*24*time.Hour/unit) {
			return Duration{}, fmt.Errorf("%q is too long", s)
		}
		total += time.Duration(n) * unit
		rest = rest[j:]
	}
	return Duration{D: total}, nil
}

// String writes the duration back in the shortest journey form.
func (d Duration) String() string {
	if d.D == 0 {
		return "0s"
	}
	var b strings.Builder
	rest := d.D
	if rest < 0 {
		b.WriteString("-")
		rest = -rest
	}
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"w", units["w"]}, {"d", units["d"]}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if n := rest / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			rest -= n * u.d
		}
	}
	return b.String()
}

// MarshalJSON writes the journey form, so stored definitions read like the documents.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads the journey form.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"2d\"")
	}
	v, err := ParseOffset(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}
