package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// ServerConfig configures the codec server: who may use it and from which browser pages.
type ServerConfig struct {
	// Tokens (CAIRN_CODEC_TOKENS, comma-separated) are accepted as "Authorization: Bearer <token>".
	Tokens []string
	// JWKSURL (CAIRN_CODEC_JWKS_URL) makes bearer JWTs signed by one of its keys accepted,
	// from JWTIssuer (CAIRN_CODEC_JWT_ISSUER) and for JWTAudience (CAIRN_CODEC_JWT_AUDIENCE)
	// when those are set.
	JWKSURL, JWTIssuer, JWTAudience string
	// Open (CAIRN_CODEC_AUTH=none) serves everyone: only for a codec server nobody else can
	// reach (dev, on loopback).
	Open bool
	// Origins (CAIRN_CODEC_ORIGINS, comma-separated) are the browser origins allowed to call
	// it (Temporal UI's); by default the origin of CAIRN_TEMPORAL_UI_URL.
	Origins []string
}

// ServerConfigFromEnv reads the codec server's configuration from the environment.
func ServerConfigFromEnv() (ServerConfig, error) {
	c := ServerConfig{JWKSURL: os.Getenv("CAIRN_CODEC_JWKS_URL"), JWTIssuer: os.Getenv("CAIRN_CODEC_JWT_ISSUER"),
		JWTAudience: os.Getenv("CAIRN_CODEC_JWT_AUDIENCE")}
	c.Tokens = splitList(os.Getenv("CAIRN_CODEC_TOKENS"))
	switch v := os.Getenv("CAIRN_CODEC_AUTH"); v {
	case "":
	case "none":
		c.Open = true
	default:
		return c, fmt.Errorf("CAIRN_CODEC_AUTH %q: the only value is none (tokens and JWTs are turned on by CAIRN_CODEC_TOKENS and CAIRN_CODEC_JWKS_URL)", v)
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			return c, fmt.Errorf("CAIRN_CODEC_JWKS_URL %q is not an http(s) URL", c.JWKSURL)
		}
	}
	origins := splitList(os.Getenv("CAIRN_CODEC_ORIGINS"))
	if len(origins) == 0 {
		if o := Origin(os.Getenv("CAIRN_TEMPORAL_UI_URL")); o != "" {
			origins = []string{o}
		}
	}
	for _, o := range origins {
		if Origin(o) != o {
			return c, fmt.Errorf("CAIRN_CODEC_ORIGINS: %q is not an origin like https://cloud.temporal.io", o)
		}
	}
	c.Origins = origins
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Origin is the origin (scheme://host[:port]) of a URL, or "" when it has none.
func Origin(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// On reports whether the codec server serves anyone.
func (c ServerConfig) On() bool { return c.Open || len(c.Tokens) > 0 || c.JWKSURL != "" }

// Server answers Temporal's remote codec protocol, as Temporal UI, Temporal Cloud's UI and
// `temporal --codec-endpoint` call it: POST <endpoint>/encode and <endpoint>/decode with
// {"payloads": [...]} (protobuf JSON), the namespace in X-Namespace.
type Server struct {
	codec     *Codec
	namespace string
	cfg       ServerConfig
	tokens    tokenAuth
	jwt       *jwtAuth
	logger    *slog.Logger
}

// maxCodecBody bounds a request: a page of history's payloads, each under Temporal's 2 MiB.
const maxCodecBody = 16 << 20

// NewServer serves c for namespace.
func NewServer(c *Codec, namespace string, cfg ServerConfig, logger *slog.Logger) *Server {
	if namespace == "" {
		namespace = "default"
	}
	s := &Server{codec: c, namespace: namespace, cfg: cfg, tokens: tokenAuth{cfg.Tokens}, logger: logger}
	if cfg.JWKSURL != "" {
		s.jwt = newJWTAuth(cfg.JWKSURL, cfg.JWTIssuer, cfg.JWTAudience)
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	return s
}

// ServeHTTP serves /…/encode and /…/decode (and their CORS preflights).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	op := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	if op != "encode" && op != "decode" {
		fail(w, http.StatusNotFound, "not_found", "the codec server answers POST …/encode and …/decode")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		fail(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	if !s.cfg.On() {
		fail(w, http.StatusNotFound, "codec_server_off", "the codec server is off: set CAIRN_CODEC_TOKENS or CAIRN_CODEC_JWKS_URL on the starter")
		return
	}
	if ns := r.Header.Get("X-Namespace"); ns != "" && ns != s.namespace {
		fail(w, http.StatusForbidden, "wrong_namespace", fmt.Sprintf("this codec server serves namespace %q, not %q", s.namespace, ns))
		return
	}
	if err := s.authorize(r); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cairn-codec"`)
		fail(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCodecBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body is larger than %d bytes", mbe.Limit))
			return
		}
		fail(w, http.StatusBadRequest, "invalid_request", "could not read the body: "+err.Error())
		return
	}
	var in commonpb.Payloads
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &in); err != nil {
		fail(w, http.StatusBadRequest, "invalid_request", `the body must be {"payloads": [...]} as protobuf JSON: `+err.Error())
		return
	}
	payloads := in.GetPayloads()
	if op == "encode" {
		payloads, err = s.codec.Encode(payloads)
	} else {
		payloads, err = s.codec.Decode(payloads)
	}
	switch {
	case errors.Is(err, ErrTampered) || errors.Is(err, ErrUnknownKey):
		fail(w, http.StatusUnprocessableEntity, "undecodable", err.Error())
		return
	case err != nil:
		s.logger.Error("codec request failed", "op", op, "error", err)
		fail(w, http.StatusInternalServerError, "internal", "the codec could not "+op+" the payloads; see the starter's log")
		return
	}
	out, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
	if err != nil {
		fail(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// authorize accepts an open server, a configured token, or a JWT from the configured JWKS.
func (s *Server) authorize(r *http.Request) error {
	if s.cfg.Open {
		return nil
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return fmt.Errorf("%w: send Authorization: Bearer <token>", errUnauthorized)
	}
	if s.tokens.check(token) {
		return nil
	}
	if s.jwt != nil {
		return s.jwt.verify(r.Context(), token)
	}
	return fmt.Errorf("%w: the token is not one of CAIRN_CODEC_TOKENS", errUnauthorized)
}

// cors lets the configured origins call from a browser, with credentials and the headers
// Temporal UI sends.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if origin == "" || !slices.Contains(s.cfg.Origins, origin) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization, Authorization-Extras")
		h.Set("Access-Control-Max-Age", "600")
	}
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
