package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/cli"
)

func TestJSONLogsCarryNoEmailAddressWhereverItComesFrom(t *testing.T) {
	var buf bytes.Buffer
	l, err := cli.NewLogger(&buf, "json", "info")
	require.NoError(t, err)
	smtpErr := fmt.Errorf("send email: %w", errors.New(`smtp: 550 5.1.1 <ada.l@example.co.uk>: Recipient address rejected`))
	l.With("component", "worker", "to", "bo@example.com").Error("activity failed for ada@example.com",
		"error", smtpErr, "group", map[string]any{"email": "cy+tag@mail.example.org"}, "attempt", 2)
	l.Debug("not written at info", "email", "dee@example.com")
	line := strings.TrimSpace(buf.String())
	require.Equal(t, 1, strings.Count(line, "\n")+1, "one line")
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(line), &rec))
	require.NotContains(t, line, "@example")
	require.Equal(t, "activity failed for [email]", rec["msg"])
	require.Equal(t, "send email: smtp: 550 5.1.1 <[email]>: Recipient address rejected", rec["error"])
	require.Equal(t, float64(2), rec["attempt"])
}

func TestLoggerRefusesUnknownFormatsAndLevels(t *testing.T) {
	_, err := cli.NewLogger(&bytes.Buffer{}, "yaml", "info")
	require.ErrorContains(t, err, "CAIRN_LOG_FORMAT")
	_, err = cli.NewLogger(&bytes.Buffer{}, "json", "loud")
	require.ErrorContains(t, err, "CAIRN_LOG_LEVEL")
}
