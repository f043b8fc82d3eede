package activities_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/activities"
)

func TestProviderRefusalsLoseAddressesAndNumbers(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"smtp 127.0.0.1:1025 refused the message: 550 5.1.1 <ada.l+news@mail.example.co.uk>: Recipient address rejected":      "smtp 127.0.0.1:1025 refused the message: 550 5.1.1 <<email>>: Recipient address rejected",
		"provider refused the request (HTTP 400): The 'To' number +1 (555) 010-9999 is not a valid phone number (code 21211)": "provider refused the request (HTTP 400): The 'To' number <phone> is not a valid phone number (code 21211)",
		"number 555-010-9999 unreachable": "number <phone> unreachable",
		"after 4 tries: HTTP 503: busy":   "after 4 tries: HTTP 503: busy",
	} {
		require.Equal(t, want, activities.RedactText(in))
	}

	cause := errors.New("550 <ada@example.com> unknown")
	err := activities.RedactError(temporal.NewNonRetryableApplicationError("to ada@example.com: rejected", activities.ErrTypeRejected, cause))
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.True(t, app.NonRetryable())
	require.Equal(t, activities.ErrTypeRejected, app.Type())
	require.NotContains(t, err.Error(), "ada@example.com")
	require.Nil(t, errors.Unwrap(app), "the cause, which quoted the address, is dropped")

	plain := activities.RedactError(fmt.Errorf("send email: %w", cause))
	require.ErrorAs(t, plain, &app)
	require.False(t, app.NonRetryable(), "still retried")
	require.Equal(t, "send email: 550 <<email>> unknown", app.Message())

	same := errors.New("template welcome not found")
	require.Same(t, same, activities.RedactError(same))
}
