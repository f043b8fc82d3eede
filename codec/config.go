package codec

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/cairnhq/cairn/crm"
)

// Config is the codec as the worker and the starter are configured with it.
type Config struct {
	// Ring is the key ring (CAIRN_CODEC_KEYS, or the file CAIRN_CODEC_KEY_FILE).
	Ring *KeyRing
	// Compress (CAIRN_CODEC_COMPRESS=true) deflates large payloads before encryption.
	Compress bool
	// CacheSize (CAIRN_CODEC_CACHE_SIZE, default 10000) and CacheTTL (CAIRN_CODEC_CACHE_TTL,
	// default 1m) bound the data keys held in memory.
	CacheSize int
	CacheTTL  time.Duration
	// Off leaves payloads in plain JSON. Nothing in the environment sets it: it exists for
	// the benchmark that measures what the codec costs.
	Off bool
}

// ErrNoKeyRing is returned by Build when no key ring is configured.
var ErrNoKeyRing = errors.New("CAIRN_CODEC_KEYS (or CAIRN_CODEC_KEY_FILE) is not set: Temporal would store contacts' personal data in plain text; " +
	"make a key with: echo \"k1:$(openssl rand -base64 32)\"")

// ConfigFromEnv reads the codec's configuration from the environment.
func ConfigFromEnv() (Config, error) {
	var c Config
	var err error
	if c.Ring, _, err = KeyRingFromEnv(); err != nil {
		return c, err
	}
	if v := os.Getenv("CAIRN_CODEC_COMPRESS"); v != "" {
		if c.Compress, err = strconv.ParseBool(v); err != nil {
			return c, fmt.Errorf("CAIRN_CODEC_COMPRESS %q is not true or false", v)
		}
	}
	if v := os.Getenv("CAIRN_CODEC_CACHE_SIZE"); v != "" {
		if c.CacheSize, err = strconv.Atoi(v); err != nil || c.CacheSize < 1 {
			return c, fmt.Errorf("CAIRN_CODEC_CACHE_SIZE %q is not a positive whole number", v)
		}
	}
	if v := os.Getenv("CAIRN_CODEC_CACHE_TTL"); v != "" {
		if c.CacheTTL, err = time.ParseDuration(v); err != nil || c.CacheTTL <= 0 {
			return c, fmt.Errorf("CAIRN_CODEC_CACHE_TTL %q is not a duration above zero (e.g. 1m)", v)
		}
	}
	return c, nil
}

// Build makes the codec over db, or nil when Off.
func (c Config) Build(db crm.DB, logger *slog.Logger) (*Codec, error) {
	if c.Off {
		return nil, nil
	}
	if c.Ring == nil {
		return nil, ErrNoKeyRing
	}
	return New(Options{Ring: c.Ring, DB: db, Compress: c.Compress, CacheSize: c.CacheSize, CacheTTL: c.CacheTTL, Logger: logger})
}
