package codec_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cairnhq/cairn/codec"
)

const uiOrigin = "http://127.0.0.1:8233"

func serve(t *testing.T, cfg codec.ServerConfig) (*httptest.Server, *codec.Codec) {
	t.Helper()
	c := newCodec(t, setup(t), ring(t, codec.NewKeyEntry("k1")))
	srv := httptest.NewServer(codec.NewServer(c, "default", cfg, quietLogger()))
	t.Cleanup(srv.Close)
	return srv, c
}

// uiRequest is the request Temporal UI (ui-server v2.54) sends: POST <endpoint>/decode?
// preserveStorageRefs=true, Content-Type and X-Namespace headers, Authorization only when
// the UI passes its access token, and the body JSON.stringify({payloads}) with base64 bytes.
func uiRequest(t *testing.T, url, op, namespace string, payloads []*commonpb.Payload, token string) *http.Response {
	t.Helper()
	type uiPayload struct {
		Metadata map[string]string `json:"metadata"`
		Data     string            `json:"data"`
	}
	var body struct {
		Payloads []uiPayload `json:"payloads"`
	}
	for _, p := range payloads {
		up := uiPayload{Metadata: map[string]string{}, Data: base64.StdEncoding.EncodeToString(p.Data)}
		for k, v := range p.Metadata {
			up.Metadata[k] = base64.StdEncoding.EncodeToString(v)
		}
		body.Payloads = append(body.Payloads, up)
	}
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest("POST", url+"/codec/"+op+"?preserveStorageRefs=true", strings.NewReader(string(b)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", namespace)
	req.Header.Set("Origin", uiOrigin)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readPayloads(t *testing.T, resp *http.Response) []*commonpb.Payload {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, string(b))
	var out commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(b, &out))
	return out.Payloads
}

func TestCodecServerAnswersTemporalUIsRequests(t *testing.T) {
	t.Parallel()
	srv, c := serve(t, codec.ServerConfig{Tokens: []string{"ct_secret"}, Origins: []string{uiOrigin}})

	// The browser's preflight: no credentials, the headers the UI will send.
	pre, err := http.NewRequest("OPTIONS", srv.URL+"/codec/decode?preserveStorageRefs=true", nil)
	require.NoError(t, err)
	pre.Header.Set("Origin", uiOrigin)
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-namespace")
	resp, err := http.DefaultClient.Do(pre)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
	for _, h := range []string{"Content-Type", "X-Namespace", "Authorization"} {
		require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), h)
	}

	enc, err := forContact(c, 1).Encode([]*commonpb.Payload{jsonPayload(t, map[string]string{"email": "ada@example.com"})})
	require.NoError(t, err)
	plain := jsonPayload(t, "from before the codec")
	resp = uiRequest(t, srv.URL, "decode", "default", append(enc, plain), "ct_secret")
	require.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	got := readPayloads(t, resp)
	require.Len(t, got, 2)
	require.Equal(t, "json/plain", string(got[0].Metadata["encoding"]))
	require.JSONEq(t, `{"email":"ada@example.com"}`, string(got[0].Data))
	require.JSONEq(t, `"from before the codec"`, string(got[1].Data))

	// Encode (the UI's signal and reset forms) writes under the shared key, and decodes back.
	resp = uiRequest(t, srv.URL, "encode", "default", []*commonpb.Payload{jsonPayload(t, "signal input")}, "ct_secret")
	encoded := readPayloads(t, resp)
	require.Equal(t, codec.Encoding, string(encoded[0].Metadata["encoding"]))
	back, err := c.Decode(encoded)
	require.NoError(t, err)
	require.JSONEq(t, `"signal input"`, string(back[0].Data))

	// Another origin gets no CORS grant.
	req, _ := http.NewRequest("OPTIONS", srv.URL+"/codec/decode", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

func TestCodecServerRefusals(t *testing.T) {
	t.Parallel()
	srv, c := serve(t, codec.ServerConfig{Tokens: []string{"ct_secret"}, Origins: []string{uiOrigin}})
	enc, err := forContact(c, 1).Encode([]*commonpb.Payload{jsonPayload(t, "ada@example.com")})
	require.NoError(t, err)
	tampered := &commonpb.Payload{Metadata: enc[0].Metadata, Data: append([]byte(nil), enc[0].Data...)}
	tampered.Data[20] ^= 0xff
	unknown := &commonpb.Payload{Metadata: map[string][]byte{}, Data: enc[0].Data}
	for k, v := range enc[0].Metadata {
		unknown.Metadata[k] = v
	}
	unknown.Metadata[codec.MetaDataKey] = []byte("dk_gone")

	for name, tc := range map[string]struct {
		ns, token string
		payloads  []*commonpb.Payload
		status    int
		says      string
	}{
		"another namespace":  {"prod", "ct_secret", enc, 403, `this codec server serves namespace \"default\", not \"prod\"`},
		"no token":           {"default", "", enc, 401, "send Authorization: Bearer"},
		"a wrong token":      {"default", "ct_wrong", enc, 401, "not one of CAIRN_CODEC_TOKENS"},
		"a tampered payload": {"default", "ct_secret", []*commonpb.Payload{tampered}, 422, "does not authenticate"},
		"an unknown key":     {"default", "ct_secret", []*commonpb.Payload{unknown}, 422, `data key \"dk_gone\" is not in this Cairn's database`},
	} {
		resp := uiRequest(t, srv.URL, "decode", tc.ns, tc.payloads, tc.token)
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, tc.status, resp.StatusCode, name)
		require.Contains(t, string(b), tc.says, name)
		require.NotContains(t, string(b), "ada@example.com", name)
	}
	resp, err := http.Post(srv.URL+"/codec/decode", "application/json", strings.NewReader(`{"payloads": [{"data": 5}]}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 401, resp.StatusCode, "authentication comes before reading the body")
}

func TestCodecServerAcceptsJWTsFromTheConfiguredJWKS(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		fmt.Fprintf(w, `{"keys":[{"kty":"RSA","kid":"idp-1","use":"sig","alg":"RS256","n":"%s","e":"%s"}]}`,
			b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	}))
	t.Cleanup(jwks.Close)
	srv, c := serve(t, codec.ServerConfig{JWKSURL: jwks.URL, JWTIssuer: "https://idp.example", JWTAudience: "cairn-codec"})
	enc, err := forContact(c, 1).Encode([]*commonpb.Payload{jsonPayload(t, "ada@example.com")})
	require.NoError(t, err)

	sign := func(claims map[string]any, k *rsa.PrivateKey) string {
		h, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "idp-1", "typ": "JWT"})
		cl, _ := json.Marshal(claims)
		signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(cl)
		d := sha256.Sum256([]byte(signed))
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
		require.NoError(t, err)
		return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	exp := time.Now().Add(time.Hour).Unix()
	good := map[string]any{"iss": "https://idp.example", "aud": []string{"cairn-codec"}, "exp": exp, "sub": "dev-1"}
	got := readPayloads(t, uiRequest(t, srv.URL, "decode", "default", enc, sign(good, key)))
	require.JSONEq(t, `"ada@example.com"`, string(got[0].Data))

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		token string
		says  string
	}{
		"expired":          {sign(map[string]any{"iss": "https://idp.example", "aud": "cairn-codec", "exp": time.Now().Add(-time.Hour).Unix()}, key), "expired"},
		"another issuer":   {sign(map[string]any{"iss": "https://other", "aud": "cairn-codec", "exp": exp}, key), "issuer"},
		"another audience": {sign(map[string]any{"iss": "https://idp.example", "aud": "other", "exp": exp}, key), "audience"},
		"another signer":   {sign(good, other), "verification error"},
		"not a JWT":        {"ct_secret", "not a JWT"},
	} {
		resp := uiRequest(t, srv.URL, "decode", "default", enc, tc.token)
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, 401, resp.StatusCode, name)
		require.Contains(t, string(b), tc.says, name)
	}
}
