package activities

import (
	"errors"
	"reflect"
	"regexp"

	"go.temporal.io/sdk/temporal"
)

// Addresses and numbers that a provider's refusal may quote (an SMTP server's "550 <ada@…>:
// mailbox unavailable", an SMS gateway's "+1 555… is not a mobile number"). Failures are
// encrypted by the codec anyway; redaction keeps them out of the worker's own logs too.
var (
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+`)
	phonePattern = regexp.MustCompile(`\+[0-9][0-9 ().\-]{6,}[0-9]|\(?\b[0-9]{3}\)?[ .\-]?[0-9]{3}[ .\-][0-9]{4}\b`)
)

// RedactText replaces email addresses with <email> and phone numbers with <phone>.
func RedactText(s string) string {
	return phonePattern.ReplaceAllString(emailPattern.ReplaceAllString(s, "<email>"), "<phone>")
}

// RedactError returns err with any email address or phone number in its text replaced,
// keeping what retries depend on: an application error's type, whether it is retryable and
// its retry delay (its cause, whose text is folded into the message, is dropped). An error
// with nothing to redact, or a cancellation, is returned as it is.
func RedactError(err error) error {
	if err == nil || temporal.IsCanceledError(err) {
		return err
	}
	msg := err.Error()
	red := RedactText(msg)
	if red == msg {
		return err
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return temporal.NewApplicationErrorWithOptions(red, app.Type(), temporal.ApplicationErrorOptions{
			NonRetryable: app.NonRetryable(), NextRetryDelay: app.NextRetryDelay(), Category: app.Category()})
	}
	return temporal.NewApplicationErrorWithOptions(red, errType(err), temporal.ApplicationErrorOptions{})
}

// errType names err's Go type as the SDK does for retry policies' non-retryable types.
func errType(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}
