// Package splittest decides split tests: which variant leads, and whether its lead is too
// large to be chance, judged as results arrive. It is pure: the CRM counts, this package
// judges.
//
// The test is the mixture sequential probability ratio test (mSPRT) for a difference of two
// proportions (Johari, Koomen, Pekelis and Walsh, "Peeking at A/B tests", KDD 2017), whose
// error guarantee holds however often it is looked at: Cairn looks each time a contact
// reaches the split (at most once a minute), so a fixed-sample z-test, looked at that often,
// would declare false winners far more often than its confidence says.
//
// For the leader L and another variant V, with n contacts and x conversions each:
//
//	p̄ = (x_L + x_V) / (n_L + n_V)                 the pooled rate
//	v = p̄ (1 − p̄) (1/n_L + 1/n_V)                 the variance of the difference under no difference
//	θ = x_L/n_L − x_V/n_V                          the observed difference
//	Λ = √(v / (v + τ²)) · exp(τ² θ² / (2 v (v + τ²)))
//
// with τ = 0.1 (the mixing prior on the difference: a normal of standard deviation 10
// percentage points, the size of lift split tests look for). L wins once every variant has
// min_sample contacts and Λ ≥ (k − 1) / (1 − confidence) against each of the k − 1 others
// (a Bonferroni share of the error for each comparison): the chance that variants alike ever
// produce a winner is then at most 1 − confidence. The p-value shown is 1/Λ (at most 1).
package splittest

import (
	"math"
	"time"

	"github.com/cairnhq/cairn/journey"
)

// Tau is the standard deviation of the mixing prior on the difference of rates.
const Tau = 0.1

// Arm is one variant's numbers: contacts sent down it while the test ran, and those that
// converted (opened, clicked, met the goal).
type Arm struct {
	ID          string  `json:"id"`
	Contacts    int64   `json:"contacts"`
	Conversions int64   `json:"conversions"`
	Rate        float64 `json:"rate"`
}

// WithRate fills Rate.
func (a Arm) WithRate() Arm {
	a.Rate = 0
	if a.Contacts > 0 {
		a.Rate = float64(a.Conversions) / float64(a.Contacts)
	}
	return a
}

// Reasons a test is decided.
const (
	ReasonSignificant = "significant"
	ReasonMaxDuration = "max_duration"
)

// Judgement is what the numbers say now.
type Judgement struct {
	Variants []Arm `json:"variants"`
	// Leader has the highest rate (the first listed of those tied).
	Leader string `json:"leader"`
	// PValue is the leader's weakest comparison: 1/Λ against the variant it leads least
	// clearly (1 until every variant has contacts).
	PValue float64 `json:"p_value"`
	// Significant says the leader beats every other variant at the test's confidence, every
	// variant having min_sample contacts.
	Significant bool `json:"significant"`
}

// Decision is a decided test: the winner, why, and the numbers it was decided on.
type Decision struct {
	Winner string `json:"winner"`
	// Reason is significant, or max_duration (no significant difference in time: the declared
	// default, else the leader, wins).
	Reason     string    `json:"reason"`
	Confidence float64   `json:"confidence"`
	PValue     float64   `json:"p_value"`
	Variants   []Arm     `json:"variants"`
	DecidedAt  time.Time `json:"decided_at"`
}

// Judge reads the arms (in the test's variant order) at the test's confidence.
func Judge(arms []Arm, minSample int, confidence float64) Judgement {
	j := Judgement{Variants: make([]Arm, len(arms)), PValue: 1}
	lead := -1
	for i, a := range arms {
		j.Variants[i] = a.WithRate()
		if lead < 0 || j.Variants[i].Rate > j.Variants[lead].Rate {
			lead = i
		}
	}
	if lead < 0 {
		return j
	}
	j.Leader = j.Variants[lead].ID
	threshold := math.Log(float64(len(arms)-1) / (1 - confidence))
	j.Significant = len(arms) > 1
	weakest := math.Inf(1)
	for i, a := range j.Variants {
		if i == lead {
			continue
		}
		if a.Contacts < int64(minSample) || j.Variants[lead].Contacts < int64(minSample) {
			j.Significant = false
		}
		l := logLambda(j.Variants[lead], a)
		if l < threshold {
			j.Significant = false
		}
		weakest = math.Min(weakest, l)
	}
	if !math.IsInf(weakest, 1) {
		j.PValue = math.Min(1, math.Exp(-weakest))
	}
	return j
}

// Decide says whether the test is decided now: started is when its first contact was sent
// down it. ok is false while it goes on.
func Decide(t journey.SplitTest, arms []Arm, started, now time.Time) (d Decision, ok bool) {
	j := Judge(arms, t.MinSample, t.Confidence)
	d = Decision{Confidence: t.Confidence, PValue: j.PValue, Variants: j.Variants, DecidedAt: now}
	switch {
	case j.Significant:
		d.Winner, d.Reason = j.Leader, ReasonSignificant
	case !started.IsZero() && now.Sub(started) >= t.MaxDuration.D:
		d.Winner, d.Reason = j.Leader, ReasonMaxDuration
		if t.Default != "" {
			d.Winner = t.Default
		}
	default:
		return d, false
	}
	return d, true
}

// logLambda is ln Λ of the mSPRT comparing a's rate with b's (0: nothing to tell yet).
func logLambda(a, b Arm) float64 {
	if a.Contacts == 0 || b.Contacts == 0 {
		return 0
	}
	pooled := float64(a.Conversions+b.Conversions) / float64(a.Contacts+b.Contacts)
	v := pooled * (1 - pooled) * (1/float64(a.Contacts) + 1/float64(b.Contacts))
	if v <= 0 {
		return 0
	}
	theta := a.Rate - b.Rate
	t2 := Tau * Tau
	return 0.5*math.Log(v/(v+t2)) + t2*theta*theta/(2*v*(v+t2))
}
