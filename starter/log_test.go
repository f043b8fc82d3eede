package starter_test

import (
	"log/slog"

	sdklog "go.temporal.io/sdk/log"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func sdkDiscard() sdklog.Logger { return sdklog.NewStructuredLogger(discard()) }
