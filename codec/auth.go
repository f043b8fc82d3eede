package codec

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// errUnauthorized is every authentication refusal; its text goes back to the caller.
var errUnauthorized = errors.New("unauthorized")

// tokenAuth accepts static bearer tokens (CAIRN_CODEC_TOKENS).
type tokenAuth struct{ tokens []string }

func (a tokenAuth) check(token string) bool {
	ok := false
	for _, t := range a.tokens {
		if t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			ok = true
		}
	}
	return ok
}

// jwtAuth accepts JSON Web Tokens signed by a key of a JWKS (an identity provider's, or
// Temporal Cloud's), unexpired, from Issuer and for Audience when those are set.
type jwtAuth struct {
	url, issuer, audience string
	client                *http.Client
	now                   func() time.Time

	mu      sync.Mutex
	keys    map[string]crypto.PublicKey
	fetched time.Time
}

// jwksRefresh is how long a fetched key set is trusted; a token naming a key not in it makes
// a new fetch, at most once per jwksMinRefetch.
const (
	jwksRefresh    = 10 * time.Minute
	jwksMinRefetch = 30 * time.Second
	clockLeeway    = time.Minute
)

func newJWTAuth(url, issuer, audience string) *jwtAuth {
	return &jwtAuth{url: url, issuer: issuer, audience: audience, client: &http.Client{Timeout: 10 * time.Second}, now: time.Now}
}

func (a *jwtAuth) verify(ctx context.Context, token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%w: the bearer token is not a JWT", errUnauthorized)
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return fmt.Errorf("%w: JWT header: %v", errUnauthorized, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("%w: JWT signature is not base64url", errUnauthorized)
	}
	key, err := a.key(ctx, header.Kid)
	if err != nil {
		return err
	}
	if err := verifySignature(header.Alg, key, []byte(parts[0]+"."+parts[1]), sig); err != nil {
		return fmt.Errorf("%w: %v", errUnauthorized, err)
	}
	var claims struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
		Exp *float64        `json:"exp"`
		Nbf *float64        `json:"nbf"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("%w: JWT claims: %v", errUnauthorized, err)
	}
	now := a.now()
	if claims.Exp == nil || now.After(time.Unix(int64(*claims.Exp), 0).Add(clockLeeway)) {
		return fmt.Errorf("%w: the JWT has expired (or has no exp)", errUnauthorized)
	}
	if claims.Nbf != nil && now.Add(clockLeeway).Before(time.Unix(int64(*claims.Nbf), 0)) {
		return fmt.Errorf("%w: the JWT is not valid yet", errUnauthorized)
	}
	if a.issuer != "" && claims.Iss != a.issuer {
		return fmt.Errorf("%w: the JWT is from issuer %q, not %q", errUnauthorized, claims.Iss, a.issuer)
	}
	if a.audience != "" {
		var auds []string
		var one string
		if json.Unmarshal(claims.Aud, &one) == nil {
			auds = []string{one}
		} else {
			_ = json.Unmarshal(claims.Aud, &auds)
		}
		if !slices.Contains(auds, a.audience) {
			return fmt.Errorf("%w: the JWT is not for audience %q", errUnauthorized, a.audience)
		}
	}
	return nil
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return errors.New("not base64url")
	}
	return json.Unmarshal(b, v)
}

// key is the JWKS key kid (the only one, when the token names none).
func (a *jwtAuth) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	find := func() crypto.PublicKey {
		if kid == "" && len(a.keys) == 1 {
			for _, k := range a.keys {
				return k
			}
		}
		return a.keys[kid]
	}
	since := a.now().Sub(a.fetched)
	if k := find(); k != nil && since < jwksRefresh {
		return k, nil
	}
	if a.fetched.IsZero() || since >= jwksMinRefetch {
		keys, err := a.fetch(ctx)
		if err != nil {
			if k := find(); k != nil {
				return k, nil // the identity provider is down: keep trusting the keys we had
			}
			return nil, fmt.Errorf("fetch JWKS %s: %w", a.url, err)
		}
		a.keys, a.fetched = keys, a.now()
	}
	if k := find(); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("%w: the JWT's key %q is not in the JWKS", errUnauthorized, kid)
}

func (a *jwtAuth) fetch(ctx context.Context) (map[string]crypto.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Crv string `json:"crv"`
			N   string `json:"n"`
			E   string `json:"e"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	keys := map[string]crypto.PublicKey{}
	b64 := func(s string) []byte { b, _ := base64.RawURLEncoding.DecodeString(s); return b }
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Kty {
		case "RSA":
			n, e := b64(k.N), b64(k.E)
			if len(n) == 0 || len(e) == 0 || len(e) > 4 {
				continue
			}
			keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		case "EC":
			var curve elliptic.Curve
			switch k.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			default:
				continue
			}
			keys[k.Kid] = &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(b64(k.X)), Y: new(big.Int).SetBytes(b64(k.Y))}
		case "OKP":
			if x := b64(k.X); k.Crv == "Ed25519" && len(x) == ed25519.PublicKeySize {
				keys[k.Kid] = ed25519.PublicKey(x)
			}
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no signing key in the set")
	}
	return keys, nil
}

func verifySignature(alg string, key crypto.PublicKey, signed, sig []byte) error {
	digest := func(h crypto.Hash) []byte {
		switch h {
		case crypto.SHA384:
			d := sha512.Sum384(signed)
			return d[:]
		case crypto.SHA512:
			d := sha512.Sum512(signed)
			return d[:]
		}
		d := sha256.Sum256(signed)
		return d[:]
	}
	hashes := map[string]crypto.Hash{"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
		"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512, "ES256": crypto.SHA256, "ES384": crypto.SHA384}
	switch k := key.(type) {
	case *rsa.PublicKey:
		h, ok := hashes[alg]
		if !ok || alg[0] == 'E' {
			return fmt.Errorf("JWT algorithm %q does not fit an RSA key", alg)
		}
		if alg[0] == 'P' {
			return rsa.VerifyPSS(k, h, digest(h), sig, nil)
		}
		return rsa.VerifyPKCS1v15(k, h, digest(h), sig)
	case *ecdsa.PublicKey:
		h, ok := hashes[alg]
		size := (k.Curve.Params().BitSize + 7) / 8
		if !ok || alg[0] != 'E' || len(sig) != 2*size {
			return fmt.Errorf("JWT algorithm %q or signature does not fit an EC key", alg)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, digest(h), r, s) {
			return errors.New("JWT signature does not verify")
		}
		return nil
	case ed25519.PublicKey:
		if alg != "EdDSA" || !ed25519.Verify(k, signed, sig) {
			return errors.New("JWT signature does not verify")
		}
		return nil
	}
	return errors.New("unsupported key")
}
