package journey_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/journey"
)

// agreementCorpus is documents the decoder and the JSON Schema must judge alike: every
// example journey, documents using each part of the language, and documents wrong in each
// way a schema can say. (What only the validator can check — a jump to a step that does not
// exist, two steps with one id, split percentages adding up to 100, a loop without a wait, a
// time zone name, a window ending before it starts, a wait of zero — is left out: a schema
// cannot express it.)
func agreementCorpus(t *testing.T) (good, bad []string) {
	t.Helper()
	files, err := filepath.Glob("../examples/*.yaml")
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		good = append(good, string(b))
	}
	doc := func(steps string) string { return "id: j\ntrigger: {event: Signed Up}\nsteps:\n" + steps }
	good = append(good,
		doc("  - {add_tag: a}\n  - end"),
		"id: j\ntriggers: [{event: A}, {tag_added: vip}, {page_visited: \"/pricing*\"}]\nsteps: [{add_tag: a}]",
		"id: j\nname: Full\ntrigger: {score_above: 50, score: engagement}\nreentry: {mode: after, wait: 30d}\ntimezone: Europe/Lisbon\nsteps: [{wait: 1d12h}]",
		"id: j\ntrigger: {date_field: renewal, offset: -3d}\nsteps: [{wait_until_date: {field: renewal, offset: -1d, at: \"09:00\"}}]",
		"id: j\ntrigger: {cart_abandoned: true}\nexit: {tag: unsubscribed}\ngoals: [{id: bought, when: {event: Order Completed, since_entry: true}, then: thanks, on_reach: wait, wait_timeout: 2d}]\nsteps: [{wait: 1h}, {id: thanks, add_tag: t}]",
		"id: j\ntrigger: {manual: true}\nreentry: {mode: once}\nsteps: [{start_journey: other}]",
		doc("  - {id: w, wait_until: {condition: {opened: welcome, within: 7d}, timeout: 2d}, then: [{add_tag: o}], else: [{add_tag: n}]}"),
		doc("  - {if: {all: [{tag: a}, {not: {field: plan, equals: pro}}]}, then: [{add_tag: x}]}"),
		doc("  - branch:\n      - {when: {score: {gte: 10}}, steps: [{add_tag: hi}]}\n      - {else: [{add_tag: lo}]}"),
		doc("  - split:\n      - {percent: 30, steps: [{add_tag: a}]}\n      - {percent: 70, steps: [{add_tag: b}]}"),
		doc("  - {id: top, wait: 1d}\n  - {goto: {step: top, max: 3}}"),
		doc("  - {update_fields: {plan: pro, coupon: null, seats: 3, trial: false}}"),
		doc("  - {adjust_score: {by: -10, score: engagement}}\n  - {adjust_score: 5}"),
		doc("  - {send_sms: Hi}\n  - {notify: {text: New lead, channel: sales}}"),
		doc("  - {create_deal: {title: T, pipeline: sales, stage: lead, value: 10}}\n  - {move_deal: {pipeline: sales, stage: won}}"),
		doc("  - {create_task: {title: Call, assignee: ana, due_in: 1d}}\n  - {add_note: hello}"),
		doc("  - {wait_for_window: {days: [mon, fri], from: \"09:00\", to: \"17:00\"}}"),
		doc("  - {if: {event: Order Completed, where: {currency: EUR}, at_least: 2, within: 30d}, else: [end]}"),
		doc("  - {if: {deal: {pipeline: sales, stage_at_least: proposal}}, then: [{add_tag: d}]}"),
		doc("  - {if: {any: [{purchased: SKU-1}, {total_spent: {gt: 100}, within: 90d}]}, then: [{add_tag: d}]}"),
		`{"id": "json-doc", "trigger": {"event": "A"}, "steps": [{"add_tag": "a"}, {"wait": "2h"}]}`,
	)
	bad = append(bad,
		"id: j\ntrigger: {event: A}\ncolour: blue\nsteps: [{add_tag: a}]",
		"trigger: {event: A}\nsteps: [{add_tag: a}]",
		"id: Bad Id\ntrigger: {event: A}\nsteps: [{add_tag: a}]",
		"id: j\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {event: A}\ntriggers: [{event: B}]\nsteps: [{add_tag: a}]",
		"id: j\ntriggers: []\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {tag_add: vip}\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {event: A, tag_added: b}\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {cart_abandoned: false}\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {event: \"\"}\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {event: A}\nsteps: []",
		"id: j\ntrigger: {event: A}",
		"id: j\ntrigger: {event: A}\nreentry: {mode: sometimes}\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {event: A}\nreentry: {mode: after}\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {event: A}\nreentry: {mode: once, wait: 1d}\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {event: A}\ngoals: [{id: g, when: {tag: x}}]\nsteps: [{add_tag: a}]",
		"id: j\ntrigger: {event: A}\ngoals: [{id: g, when: {tag: x}, then: s, on_reach: later}]\nsteps: [{id: s, add_tag: a}]",
		"id: j\ntrigger: {event: A}\ngoals: [{id: g, when: {tag: x}, then: s, wait_timeout: 1d}]\nsteps: [{id: s, add_tag: a}]",
		"id: j\ntrigger: {event: A}\ngoals: [{id: Goal One, when: {tag: x}, then: s}]\nsteps: [{id: s, add_tag: a}]",
		doc("  - {send_smss: {text: x}}"),
		doc("  - {wait: 2 dayz}"),
		doc("  - {add_tag: a, wait: 1d}"),
		doc("  - 42"),
		doc("  - {send_email: {}}"),
		doc("  - {send_email: {template: \"\"}}"),
		doc("  - {add_tag: \"\"}"),
		doc("  - {id: Bad Step, add_tag: a}"),
		doc("  - {add_tag: a, then: [{add_tag: b}]}"),
		doc("  - {if: {tag: a}}"),
		doc("  - {if: {tags: vip}, then: [end]}"),
		doc("  - {if: {}, then: [end]}"),
		doc("  - split:\n      - {percent: 0, steps: [{add_tag: a}]}\n      - {percent: 100, steps: [{add_tag: b}]}"),
		doc("  - split:\n      - {steps: [{add_tag: a}]}\n      - {percent: 50, steps: [{add_tag: b}]}"),
		doc("  - split:\n      - {percent: 100, steps: [{add_tag: a}]}"),
		doc("  - branch:\n      - {steps: [{add_tag: a}]}\n      - {else: [{add_tag: b}]}"),
		doc("  - {goto: {step: top, max: 0}}"),
		doc("  - {goto: {max: 2}}"),
		doc("  - {wait_for_window: {days: [mon, funday], from: \"09:00\", to: \"17:00\"}}"),
		doc("  - {wait_for_window: {days: [mon], from: \"25:00\", to: \"26:00\"}}"),
		doc("  - {wait_for_window: {days: [mon], from: \"09:00\"}}"),
		doc("  - {wait_until_date: {}}"),
		doc("  - {wait_until_date: {date: 2026-12-24, field: renewal}}"),
		doc("  - {wait_until: {timeout: 1d}}"),
		doc("  - {end: false}"),
		doc("  - {create_deal: {title: T, pipeline: sales}}"),
		doc("  - {create_task: {title: Call}}"),
		doc("  - {start_journey: Not An Id}"),
		doc("  - {update_fields: {plan: [a, b]}}"),
		doc("  - {if: {score: {gte: ten}}, then: [end]}"),
		doc("  - {if: {event: A, at_least: -1}, then: [end]}"),
	)
	return good, bad
}

// TestValidatorAndSchemaAgree feeds the decoder and the JSON Schema the same documents: what
// one accepts the other accepts, what one refuses the other refuses.
func TestValidatorAndSchemaAgree(t *testing.T) {
	t.Parallel()
	s := compileSchema(t)
	good, bad := agreementCorpus(t)
	require.GreaterOrEqual(t, len(good)+len(bad), 50, "a corpus of at least 50 documents")
	for _, doc := range good {
		_, err := journey.Decode([]byte(doc))
		require.NoError(t, err, "the decoder refuses a good document:\n%s", doc)
		require.NoError(t, s.Validate(asJSON(t, []byte(doc))), "the schema refuses a good document:\n%s", doc)
	}
	for _, doc := range bad {
		_, err := journey.Decode([]byte(doc))
		require.Error(t, err, "the decoder accepts a bad document:\n%s", doc)
		require.Error(t, s.Validate(asJSON(t, []byte(doc))), "the schema accepts a bad document the decoder refuses (%v):\n%s",
			strings.ReplaceAll(errString(err), "\n", " "), doc)
	}
	t.Logf("%d good and %d bad documents judged alike", len(good), len(bad))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
