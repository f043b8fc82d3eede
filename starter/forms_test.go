package starter_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cairnhq/cairn/crm"
	"github.com/stretchr/testify/require"
)

func TestFormSubmissionMapsFieldsSubscribesAndTags(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.do(t, "PUT", "/v1/forms/demo", `{"fields": {"E-mail": "email", "Name": "first_name"}, "list": "newsletter", "tags": ["lead", "demo"]}`, bearer(adminKey))
	require.Equal(t, 201, r.Status)

	// A plain HTML form: urlencoded, write key in the query string.
	form := url.Values{"E-mail": {"Ada@Example.com"}, "Name": {"Ada"}, "company": {"Acme"}, "messageId": {"s1"}}
	for i := 0; i < 2; i++ { // a double submit records once
		resp, err := http.Post(f.srv.URL+"/v1/forms/demo?writeKey="+writeKey, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
	}
	c, err := crm.ContactByExternalID(f.ctx, f.store, "ada@example.com")
	require.NoError(t, err)
	require.Equal(t, "Ada@Example.com", c.Email)
	require.Equal(t, "Ada", c.Traits["first_name"])
	require.Equal(t, "Acme", c.Traits["company"])
	require.ElementsMatch(t, []string{"lead", "demo"}, c.Tags)
	require.Equal(t, 1, f.count(t, `events WHERE name = 'form_submitted'`))
	require.Equal(t, 1, f.count(t, `events WHERE name = 'list_subscribed'`))
	require.Equal(t, 2, f.count(t, `events WHERE name = 'tag_added'`))

	// JSON works too; a missing identity is a clear 400 that records nothing.
	r = f.do(t, "POST", "/v1/forms/demo", `{"E-mail": "bo@example.com"}`, basic(writeKey))
	require.Equal(t, 200, r.Status)
	r = f.do(t, "POST", "/v1/forms/demo", `{"Name": "No Email"}`, basic(writeKey))
	require.Equal(t, 400, r.Status)
	require.Equal(t, "email", errorOf(t, r)["path"])
	r = f.do(t, "POST", "/v1/forms/nope", `{"E-mail": "x@example.com"}`, basic(writeKey))
	require.Equal(t, 404, r.Status)
	require.Equal(t, 2, f.count(t, `events WHERE name = 'form_submitted'`))
}
