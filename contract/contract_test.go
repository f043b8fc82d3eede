package contract_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/contract"
)

func TestContactOfWorkflowID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]int64{
		contract.WorkflowID("welcome", 42): 42, contract.WorkflowID("a:b", 7): 7, contract.CartWatchID(9): 9,
		contract.DateScheduleID: 0, "journey:x": 0, "journey:x:07": 0, "journey:x:-1": 0, "cart:": 0, "other:5": 0,
		contract.KeyedWorkflowID("cart-recovery", 12, contract.RunKey("cart-1")): 12, contract.KeyedWorkflowID("j", 5, ""): 5,
		"journey:x:kdeadbeefdeadbeef": 0, "journey:x:3:kdeadbeefdeadbee": 0,
	} {
		got, ok := contract.ContactOfWorkflowID(id)
		require.Equal(t, want, got, id)
		require.Equal(t, want != 0, ok, id)
	}
}

func TestIDsThatArePersonalDataStayOutOfSearchAttributes(t *testing.T) {
	t.Parallel()
	for id, personal := range map[string]bool{
		"ada@example.com": true, "anon:ada@example.com": true, "+15550109999": true, "(555) 010-9999": true, "555-010-9999": true,
		"ada": false, "12345678": false, "anon:3f2a-9c": false, "u-2024-01": false, "+12": false,
	} {
		require.Equal(t, personal, contract.PersonalID(id), id)
	}
	sa := temporal.NewSearchAttributes(contract.ContactAttributes("ada@example.com", []string{"anon:a1", "+1 555 010 9999"})...)
	_, set := sa.GetKeyword(contract.AttrContact)
	require.False(t, set, "an email address is not the contact's search attribute")
	ids, _ := sa.GetKeywordList(contract.AttrContactIDs)
	require.Equal(t, []string{"anon:a1"}, ids)
	sa = temporal.NewSearchAttributes(contract.ContactAttributes("ada", []string{"anon:a1"})...)
	cur, _ := sa.GetKeyword(contract.AttrContact)
	require.Equal(t, "ada", cur)
}

func TestARunKeyNamesTheValueWithoutShowingIt(t *testing.T) {
	t.Parallel()
	a, b := contract.RunKey("ada@example.com"), contract.RunKey("cart-2")
	require.NotEqual(t, a, b)
	require.Len(t, a, 17)
	require.NotContains(t, contract.KeyedWorkflowID("j", 1, a), "ada")
	require.Equal(t, contract.RunKey(float64(12)), contract.RunKey(12), "a number is the same key however it was decoded")
	require.Empty(t, contract.RunKey(nil))
	require.Empty(t, contract.RunKey("  "))
	require.Equal(t, "journey:j:1", contract.KeyedWorkflowID("j", 1, ""))
}
