package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
)

func stageIDs(p *crm.Pipeline) []string {
	out := []string{}
	for _, st := range p.Stages {
		out = append(out, st.ID)
	}
	return out
}

func TestDealsNamingUnknownStagesCreateThemLast(t *testing.T) {
	t.Parallel()
	ctx, s := setup(t)
	_, err := crm.PutPipeline(ctx, s, crm.Pipeline{ID: "sales", Name: "Sales", Stages: []crm.Stage{{ID: "lead", Name: "Lead"}, {ID: "won", Name: "Won"}}})
	require.NoError(t, err)
	id := newContact(t, ctx, s, "ann", nil)
	_, err = crm.CreateDeal(ctx, s, crm.Action{Key: "d1", ContactID: id, At: time.Now()}, journey.Deal{Title: "Big", Pipeline: "sales", Stage: "proposal"})
	require.NoError(t, err)
	_, err = crm.MoveDeal(ctx, s, crm.Action{Key: "m1", ContactID: id, At: time.Now()}, "sales", "lead")
	require.NoError(t, err)
	_, err = crm.MoveDeal(ctx, s, crm.Action{Key: "m2", ContactID: id, At: time.Now()}, "sales", "negotiation")
	require.NoError(t, err)
	_, err = crm.SyncDeal(ctx, s, crm.DealUpdate{ExternalID: "x1", Contact: "bob", Pipeline: "renewals", Stage: "due", At: time.Now()})
	require.NoError(t, err)

	p, err := crm.PipelineByID(ctx, s, "sales")
	require.NoError(t, err)
	require.Equal(t, []string{"lead", "won", "proposal", "negotiation"}, stageIDs(p))
	require.Equal(t, 4, p.Stages[3].Position)
	p, err = crm.PipelineByID(ctx, s, "renewals")
	require.NoError(t, err)
	require.Equal(t, []string{"due"}, stageIDs(p), "a synced deal's pipeline is created too")

	p, err = crm.PutPipeline(ctx, s, crm.Pipeline{ID: "sales", Name: "Sales", Stages: []crm.Stage{{ID: "lead"}, {ID: "proposal", Name: "Proposal"}, {ID: "negotiation"}, {ID: "won"}}})
	require.NoError(t, err)
	require.Equal(t, []string{"lead", "proposal", "negotiation", "won"}, stageIDs(p))
	p, err = crm.PutPipeline(ctx, s, crm.Pipeline{ID: "sales", Name: "Sales v2", Stages: []crm.Stage{{ID: "won"}}})
	require.NoError(t, err)
	require.Equal(t, []string{"won", "lead", "proposal", "negotiation"}, stageIDs(p), "stages left out stay, after the listed ones")
	require.Equal(t, "Sales v2", p.Name)

	_, err = crm.PipelineByID(ctx, s, "nope")
	require.ErrorIs(t, err, crm.ErrNotFound)
}
