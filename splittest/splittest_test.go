package splittest_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/splittest"
)

// run plays one test: contacts alternate between a and b (as Cairn assigns them), each
// converting with its variant's rate, the test judged after every contact once both variants
// have minSample, up to horizon contacts per variant. It returns the winner ("" for none) and
// the contacts per variant when decided.
func run(r *rand.Rand, rateA, rateB float64, minSample int, confidence float64, horizon int) (string, int64) {
	arms := []splittest.Arm{{ID: "a"}, {ID: "b"}}
	rates := []float64{rateA, rateB}
	for n := 0; n < 2*horizon; n++ {
		i := n % 2
		arms[i].Contacts++
		if r.Float64() < rates[i] {
			arms[i].Conversions++
		}
		if j := splittest.Judge(arms, minSample, confidence); j.Significant {
			return j.Leader, arms[1].Contacts
		}
	}
	return "", arms[1].Contacts
}

func TestVariantsAlikeGetAFalseWinnerNoMoreOftenThanTheConfidenceAllows(t *testing.T) {
	t.Parallel()
	const reps = 400
	for _, tc := range []struct {
		rate       float64
		confidence float64
	}{{0.2, 0.95}, {0.05, 0.95}, {0.5, 0.9}} {
		r := rand.New(rand.NewPCG(14, uint64(tc.rate*1000)))
		falseWinners := 0
		for range reps {
			if w, _ := run(r, tc.rate, tc.rate, 100, tc.confidence, 3000); w != "" {
				falseWinners++
			}
		}
		t.Logf("rate %.2f, confidence %.2f: %d false winners in %d tests (%.1f %%; allowed %.0f %%)",
			tc.rate, tc.confidence, falseWinners, reps, 100*float64(falseWinners)/reps, 100*(1-tc.confidence))
		require.LessOrEqual(t, float64(falseWinners)/reps, 1-tc.confidence)
	}
}

func TestAPlantedLiftIsFound(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(14, 30))
	const reps = 200
	found, wrong := 0, 0
	var contacts int64
	for range reps {
		w, n := run(r, 0.20, 0.30, 100, 0.95, 3000)
		switch w {
		case "b":
			found++
			contacts += n
		case "a":
			wrong++
		}
	}
	t.Logf("B (30 %%) over A (20 %%): found in %d of %d tests, after %d contacts per variant on average; A declared %d times",
		found, reps, contacts/int64(max(found, 1)), wrong)
	require.Zero(t, wrong)
	require.GreaterOrEqual(t, found, reps*95/100)
}

func TestATestWithoutASignificantDifferenceEndsAtMaxDurationWithTheDefaultOrTheLeader(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	test := journey.SplitTest{Variants: []journey.Variant{{ID: "a"}, {ID: "b"}}, Metric: journey.MetricOpened,
		MinSample: 100, Confidence: 0.95, MaxDuration: journey.Duration{D: 7 * 24 * time.Hour}}
	close := []splittest.Arm{{ID: "a", Contacts: 150, Conversions: 30}, {ID: "b", Contacts: 150, Conversions: 33}}
	_, ok := splittest.Decide(test, close, start, start.Add(6*24*time.Hour))
	require.False(t, ok, "before max_duration a close test goes on")
	d, ok := splittest.Decide(test, close, start, start.Add(7*24*time.Hour))
	require.True(t, ok)
	require.Equal(t, "b", d.Winner, "the leader")
	require.Equal(t, splittest.ReasonMaxDuration, d.Reason)
	require.InDelta(t, 0.22, d.Variants[1].Rate, 1e-9)
	test.Default = "a"
	d, _ = splittest.Decide(test, close, start, start.Add(8*24*time.Hour))
	require.Equal(t, "a", d.Winner, "the declared default")

	clear := []splittest.Arm{{ID: "a", Contacts: 600, Conversions: 120}, {ID: "b", Contacts: 600, Conversions: 180}}
	d, ok = splittest.Decide(test, clear, start, start.Add(time.Hour))
	require.True(t, ok)
	require.Equal(t, "b", d.Winner)
	require.Equal(t, splittest.ReasonSignificant, d.Reason)
	require.Less(t, d.PValue, 0.05)
	// Under min_sample nothing is decided, however clear.
	test.MinSample = 1000
	_, ok = splittest.Decide(test, clear, start, start.Add(time.Hour))
	require.False(t, ok)
}
