package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/contract"
)

// TestTheCartRecoveryExampleEmailsTheCartAndTwoRecommendations runs the example journey and
// its templates as dev applies them: a contact abandons a cart of two products, and the first
// reminder lists both lines with their prices and two products it did not buy, picked from
// what other customers bought with them.
func TestTheCartRecoveryExampleEmailsTheCartAndTwoRecommendations(t *testing.T) {
	s := setup(t)
	// Templates first: a journey naming a template that does not exist is refused.
	for _, id := range []string{"cart-reminder-1", "cart-reminder-2", "cart-last-call", "thanks-for-your-order"} {
		tpl, err := os.ReadFile(filepath.Join("..", "examples", "templates", id+".yaml"))
		require.NoError(t, err)
		status, body := s.call(t, "PUT", "/v1/templates/"+id, string(tpl), asAdmin)
		require.Contains(t, []int{200, 201}, status, body)
	}
	doc, err := os.ReadFile(filepath.Join("..", "examples", "cart-recovery.yaml"))
	require.NoError(t, err)
	s.apply(t, "cart-recovery", string(doc))
	product := func(sku, name string, price float64) string {
		return fmt.Sprintf(`{"sku":%q,"name":%q,"price":%v,"quantity":1}`, sku, name, price)
	}
	order := func(user, id string, products ...string) {
		s.track(t, fmt.Sprintf(`{"userId":%q,"event":"Order Completed","properties":{"order_id":%q,"currency":"EUR","products":[%s]}}`,
			user, id, strings.Join(products, ",")))
	}
	// Other customers: lamps go with shades, bulbs with cables; mugs with everything.
	for i := range 4 {
		order(fmt.Sprint("lamp-buyer-", i), fmt.Sprint("l", i), product("LAMP", "Desk lamp", 20), product("SHADE", "Lamp shade", 12), product("MUG", "Mug", 8))
		order(fmt.Sprint("bulb-buyer-", i), fmt.Sprint("b", i), product("BULB", "Bulb", 3.5), product("CABLE", "Cable", 4.25))
	}
	// Ada bought a mug before; now she fills a cart and leaves it.
	s.track(t, `{"userId":"ada","event":"Signed Up","context":{"traits":{"email":"ada@example.com","first_name":"Ada"}}}`)
	order("ada", "a1", product("MUG", "Mug", 8))
	s.track(t, `{"userId":"ada","event":"Product Added","properties":{"cart_id":"k-1","sku":"LAMP","name":"Desk lamp","price":20,"quantity":2}}`)
	s.track(t, `{"userId":"ada","event":"Product Added","properties":{"cart_id":"k-1","sku":"BULB","name":"Bulb","price":3.5}}`)
	s.track(t, `{"userId":"ada","event":"Checkout Started","properties":{"cart_id":"k-1","value":43.5,"currency":"EUR"}}`)
	s.track(t, `{"userId":"ada","event":"cart_abandoned","properties":{"cart_id":"k-1"}}`)

	var text string
	require.Eventually(t, func() bool {
		for _, m := range s.mail.Messages() {
			if strings.Contains(strings.Join(m.To, ","), "ada@example.com") {
				text = m.Text
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond)
	t.Logf("the first reminder:\n%s", text)
	require.Contains(t, text, "Desk lamp × 2: €40.00")
	require.Contains(t, text, "Bulb × 1: €3.50")
	require.Contains(t, text, "Total: €43.50")
	_, recs, ok := strings.Cut(text, "You might also like:")
	require.True(t, ok, text)
	var picked []string
	for _, line := range strings.Split(recs, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "- ") {
			picked = append(picked, strings.TrimPrefix(line, "- "))
		}
	}
	require.Len(t, picked, 2, recs)
	for _, p := range picked {
		for _, bought := range []string{"Mug", "Desk lamp", "Bulb"} {
			require.False(t, strings.HasPrefix(p, bought+":"), "%q: ada bought it or has it in her cart", p)
		}
	}
	require.ElementsMatch(t, []string{"Lamp shade: €12.00", "Cable: €4.25"}, picked, "what was bought with the cart's products")
	recordHistory(t, s, contract.WorkflowID("cart-recovery", s.contact(t, "ada")), "cart-recovery-trigger-context")
}
