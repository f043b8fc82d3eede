package codec

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
)

// Payload metadata written by the codec. Every one of Cairn's encrypted payloads has
// Encoding as its "encoding"; a payload without it was never encoded by Cairn (a history
// from before the codec) and is passed through as it is. A payload that has it, or any
// "cairn-" metadata, either decrypts or is an error: never a plain-text fallback.
const (
	Encoding = "binary/cairn-aes256gcm"
	// MetaDataKey names the data key the payload is encrypted under.
	MetaDataKey = "cairn-data-key"
	// MetaKey names the key-ring key that wrapped that data key when the payload was written.
	MetaKey = "cairn-key"
	// MetaCompression is "deflate" when the payload was compressed before encryption.
	MetaCompression = "cairn-compression"
	metaPrefix      = "cairn-"
)

// Erased is what every payload of an erased contact decodes to: the JSON string "(erased)".
var Erased = []byte(`"(erased)"`)

// Errors a decode can end with; each names the payload and the key.
var (
	// ErrTampered: the payload or its metadata was changed, or it is not Cairn's.
	ErrTampered = errors.New("cairn codec: payload does not authenticate (tampered with, or not Cairn's)")
	// ErrUnknownKey: the payload's data key, or the key-ring key wrapping it, is not known here.
	ErrUnknownKey = errors.New("cairn codec: unknown key")
	// ErrErased: an encode was asked for a contact whose data key was destroyed.
	ErrErased = errors.New("cairn codec: the contact was erased")
)

// Options configure a Codec.
type Options struct {
	// Ring wraps and unwraps data keys.
	Ring *KeyRing
	// DB holds the data keys (table data_keys).
	DB crm.DB
	// Compress deflates payloads of 256 bytes or more before encrypting them, when that
	// makes them smaller (CAIRN_CODEC_COMPRESS).
	Compress bool
	// CacheSize bounds the data keys kept in memory (default 10,000); CacheTTL is how long one
	// is kept before it is read again (default 1 minute): how long another process may still
	// use the key of a contact erased elsewhere.
	CacheSize int
	CacheTTL  time.Duration
	Logger    *slog.Logger
}

// Codec encrypts and decrypts payloads. Without a serialization context, or with one of no
// contact's workflow, it encrypts under the shared data key; the SDK gives it the workflow
// ID of every payload it converts, and with a contact's workflow it encrypts under that
// contact's data key. Decryption needs no context: the payload names its data key.
type Codec struct {
	ring     *KeyRing
	db       crm.DB
	compress bool
	cache    *keyCache
	logger   *slog.Logger
}

// New builds a Codec; the data keys it needs are read or made in opts.DB when first used.
func New(opts Options) (*Codec, error) {
	if opts.Ring == nil {
		return nil, errors.New("codec: no key ring")
	}
	if opts.DB == nil {
		return nil, errors.New("codec: no database for data keys")
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10_000
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Codec{ring: opts.Ring, db: opts.DB, compress: opts.Compress, logger: opts.Logger,
		cache: newKeyCache(opts.CacheSize, opts.CacheTTL)}, nil
}

// Ring is the codec's key ring.
func (c *Codec) Ring() *KeyRing { return c.ring }

// Encode encrypts payloads under the shared data key (payloads of no contact).
func (c *Codec) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) { return c.encode(0, ps) }

// Decode decrypts Cairn's payloads, and passes others through unchanged.
func (c *Codec) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		d, err := c.decodeOne(p)
		if err != nil {
			if len(ps) > 1 {
				return ps, fmt.Errorf("payload %d: %w", i, err)
			}
			return ps, err
		}
		out[i] = d
	}
	return out, nil
}

// WithSerializationContext returns the codec for the contact whose workflow the payloads
// belong to (see contract.ContactOfWorkflowID), or c itself for workflows of no contact.
func (c *Codec) WithSerializationContext(sc converter.SerializationContext) converter.PayloadCodec {
	if id, ok := ContactOf(sc); ok {
		return &contactCodec{c: c, contactID: id}
	}
	return c
}

// ContactOf is the contact a serialization context's workflow belongs to.
func ContactOf(sc converter.SerializationContext) (int64, bool) {
	switch s := sc.(type) {
	case converter.WorkflowSerializationContext:
		return contract.ContactOfWorkflowID(s.WorkflowID)
	case converter.ActivitySerializationContext:
		return contract.ContactOfWorkflowID(s.WorkflowID)
	}
	return 0, false
}

// contactCodec encodes under one contact's data key.
type contactCodec struct {
	c         *Codec
	contactID int64
}

func (cc *contactCodec) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return cc.c.encode(cc.contactID, ps)
}

func (cc *contactCodec) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return cc.c.Decode(ps)
}

func (c *Codec) encode(contactID int64, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if len(ps) == 0 {
		return ps, nil
	}
	k, err := c.contactKey(contactID)
	if err != nil {
		return ps, err
	}
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		plain, err := proto.Marshal(p)
		if err != nil {
			return ps, fmt.Errorf("cairn codec: marshal payload: %w", err)
		}
		meta := map[string][]byte{
			converter.MetadataEncoding: []byte(Encoding),
			MetaDataKey:                []byte(k.id),
			MetaKey:                    []byte(k.by),
		}
		if c.compress && len(plain) >= 256 {
			if z := deflate(plain); len(z) < len(plain) {
				plain = z
				meta[MetaCompression] = []byte("deflate")
			}
		}
		nonce := randomBytes(k.aead.NonceSize())
		out[i] = &commonpb.Payload{Metadata: meta, Data: k.aead.Seal(nonce, nonce, plain, aad(meta))}
	}
	return out, nil
}

func (c *Codec) decodeOne(p *commonpb.Payload) (*commonpb.Payload, error) {
	enc := string(p.GetMetadata()[converter.MetadataEncoding])
	if enc != Encoding {
		for name := range p.GetMetadata() {
			if strings.HasPrefix(name, metaPrefix) {
				return nil, fmt.Errorf("%w: it has Cairn's %q metadata but the encoding %q", ErrTampered, name, enc)
			}
		}
		return p, nil // written before the codec, or not by Cairn: plain as it was stored
	}
	id := string(p.Metadata[MetaDataKey])
	if id == "" {
		return nil, fmt.Errorf("%w: the payload names no data key", ErrTampered)
	}
	k, err := c.dataKey(id)
	if err != nil {
		return nil, err
	}
	if k.erased {
		return &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingJSON)}, Data: Erased}, nil
	}
	n := k.aead.NonceSize()
	if len(p.Data) < n+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: data key %s: the payload is too short", ErrTampered, id)
	}
	plain, err := k.aead.Open(nil, p.Data[:n], p.Data[n:], aad(p.Metadata))
	if err != nil {
		return nil, fmt.Errorf("%w: data key %s", ErrTampered, id)
	}
	switch z := string(p.Metadata[MetaCompression]); z {
	case "":
	case "deflate":
		if plain, err = inflate(plain); err != nil {
			return nil, fmt.Errorf("cairn codec: data key %s: inflate: %w", id, err)
		}
	default:
		return nil, fmt.Errorf("cairn codec: data key %s: unknown compression %q", id, z)
	}
	out := &commonpb.Payload{}
	if err := proto.Unmarshal(plain, out); err != nil {
		return nil, fmt.Errorf("cairn codec: data key %s: unmarshal payload: %w", id, err)
	}
	return out, nil
}

// aad binds every cairn- metadata value and the encoding to the ciphertext, so none can be
// swapped (a payload moved under another contact's key id fails, even before that).
func aad(meta map[string][]byte) []byte {
	names := []string{converter.MetadataEncoding}
	for name := range meta {
		if strings.HasPrefix(name, metaPrefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names[1:])
	var b bytes.Buffer
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte(0)
		b.Write(meta[name])
		b.WriteByte(0)
	}
	return b.Bytes()
}

// deflaters are reused: a flate writer allocates about a megabyte.
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	w := deflaters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	deflaters.Put(w)
	return buf.Bytes()
}

// maxInflated bounds a decompressed payload (Temporal's own payload limit is 2 MiB).
const maxInflated = 64 << 20

func inflate(b []byte) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(b))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, maxInflated+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxInflated {
		return nil, errors.New("payload inflates past 64 MiB")
	}
	return out, nil
}

// dbTimeout bounds a data key read or write: the codec runs inside workflow tasks.
const dbTimeout = 10 * time.Second

func dbContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dbTimeout)
}
