package email_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/email"
)

// tokenOf is the token part of a tracking URL.
func tokenOf(u string) string { return u[strings.LastIndex(u, "/")+1:] }

func TestEveryOneCharacterChangeToAnOpenClickOrUnsubscribeTokenIsRefused(t *testing.T) {
	t.Parallel()
	tr := email.Tracker{Signer: email.Signer{Key: []byte("k")}, BaseURL: "https://cairn.example.com", Expiry: email.DefaultExpiry}
	now := time.Now()
	tokens := map[string]string{
		email.KindOpen:        tokenOf(tr.URL(email.Claims{Kind: email.KindOpen, MessageID: 12, ContactID: 34})),
		email.KindClick:       tokenOf(tr.URL(email.Claims{Kind: email.KindClick, MessageID: 12, ContactID: 34, URL: "https://shop.example.com/cart?x=1&y=2"})),
		email.KindUnsubscribe: tokenOf(tr.URL(email.Claims{Kind: email.KindUnsubscribe, MessageID: 12, ContactID: 34})),
	}
	// Letters, digits, both base64url symbols, the separator, padding and the line breaks
	// that lenient base64 decoders skip.
	replacements := []byte("AaBbQgwz0189-_.=\n\r+/ ")
	for kind, tok := range tokens {
		_, err := tr.Verify(tok, kind, now)
		require.NoError(t, err, kind)
		tried := 0
		for i := 0; i < len(tok); i++ {
			for _, r := range replacements {
				if tok[i] == r {
					continue
				}
				mutated := tok[:i] + string(r) + tok[i+1:]
				_, err := tr.Verify(mutated, kind, now)
				require.ErrorIs(t, err, email.ErrBadToken, "%s token with position %d changed to %q", kind, i, r)
				tried++
			}
		}
		for _, extra := range []string{"\n", "A", "="} {
			for _, mutated := range []string{extra + tok, tok + extra, strings.Replace(tok, ".", "."+extra, 1)} {
				_, err := tr.Verify(mutated, kind, now)
				require.ErrorIs(t, err, email.ErrBadToken, "%s token %q", kind, mutated)
			}
		}
		require.GreaterOrEqual(t, tried, len(tok)*(len(replacements)-1), kind)
	}
}

func TestTheLastSignatureCharacterHasOneSpellingOnly(t *testing.T) {
	t.Parallel()
	s := email.Signer{Key: []byte("k")}
	tok := s.Sign(email.Claims{Kind: email.KindOpen, MessageID: 1, ContactID: 2})
	// 32 signature bytes fill 43 base64 characters with 2 bits to spare: the 3 other
	// characters that differ only in those bits decode to the same bytes.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	for spare := 1; spare < 4; spare++ {
		other := tok[:len(tok)-1] + string(alphabet[last^spare])
		_, err := s.Verify(other, email.KindOpen, time.Now())
		require.ErrorIs(t, err, email.ErrBadToken, "last character %q", other[len(other)-1])
	}
}

func TestTokensCarryTheirKindsExpiryAndOldTokensWithoutOneKeepWorking(t *testing.T) {
	t.Parallel()
	tr := email.Tracker{Signer: email.Signer{Key: []byte("k")}, Expiry: email.DefaultExpiry}
	now := time.Now()
	for kind, ttl := range map[string]time.Duration{email.KindOpen: 365 * 24 * time.Hour, email.KindClick: 5 * 365 * 24 * time.Hour, email.KindUnsubscribe: 0} {
		tok := tokenOf(tr.URL(email.Claims{Kind: kind, MessageID: 1, ContactID: 2, URL: "https://x.example.com"}))
		c, err := tr.Verify(tok, kind, now)
		require.NoError(t, err)
		if ttl == 0 {
			require.Zero(t, c.Expires, "%s links never expire", kind)
			continue
		}
		require.InDelta(t, now.Add(ttl).Unix(), c.Expires, 5, kind)
		c, err = tr.Verify(tok, kind, now.Add(ttl+time.Minute))
		require.ErrorIs(t, err, email.ErrTokenExpired, kind)
		require.Equal(t, int64(1), c.MessageID, "an expired token still says what it was for")
	}

	// A token minted before expiry existed has no "x" claim: it verifies forever.
	old := email.Signer{Key: []byte("k")}.Sign(email.Claims{Kind: email.KindClick, MessageID: 1, ContactID: 2, URL: "https://x.example.com"})
	_, err := tr.Verify(old, email.KindClick, now.Add(50*365*24*time.Hour))
	require.NoError(t, err)
}

// Not parallel: it sets the environment.
func TestExpiryFromEnvDefaultsLongAndTakesZeroAsNever(t *testing.T) {
	for _, k := range []string{"CAIRN_TRACKING_OPEN_TTL", "CAIRN_TRACKING_CLICK_TTL", "CAIRN_TRACKING_UNSUBSCRIBE_TTL"} {
		t.Setenv(k, "")
	}
	e, err := email.ExpiryFromEnv()
	require.NoError(t, err)
	require.Equal(t, email.Expiry{Open: 365 * 24 * time.Hour, Click: 5 * 365 * 24 * time.Hour}, e)
	t.Setenv("CAIRN_TRACKING_OPEN_TTL", "0")
	t.Setenv("CAIRN_TRACKING_CLICK_TTL", "30d")
	t.Setenv("CAIRN_TRACKING_UNSUBSCRIBE_TTL", "2w")
	e, err = email.ExpiryFromEnv()
	require.NoError(t, err)
	require.Equal(t, email.Expiry{Click: 30 * 24 * time.Hour, Unsubscribe: 14 * 24 * time.Hour}, e)
	t.Setenv("CAIRN_TRACKING_CLICK_TTL", "a while")
	_, err = email.ExpiryFromEnv()
	require.ErrorContains(t, err, "CAIRN_TRACKING_CLICK_TTL")
}
