package activities_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/telemetry"
)

func TestDeliveriesWithoutAProviderAreCountedAsNotConfigured(t *testing.T) {
	a := &activities.Activities{}
	for _, c := range []struct {
		channel string
		call    func() error
	}{
		{"email", func() error {
			_, err := a.SendEmail(context.Background(), activities.SendEmailInput{Key: "k", ContactID: 1, Template: "t"})
			return err
		}},
		{"sms", func() error {
			_, err := a.SendSMS(context.Background(), activities.ActionInput{Key: "k", ContactID: 1, Step: journey.Step{ID: "s"}})
			return err
		}},
	} {
		before := testutil.ToFloat64(telemetry.Sends.WithLabelValues(c.channel, "not_ready"))
		require.Error(t, c.call())
		require.Equal(t, before+1, testutil.ToFloat64(telemetry.Sends.WithLabelValues(c.channel, "not_ready")), c.channel)
	}
}
