package codec_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/pglocal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// countingDB counts the queries the codec makes.
type countingDB struct {
	*pgxpool.Pool
	reads atomic.Int64
}

func (c *countingDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c.reads.Add(1)
	return c.Pool.QueryRow(ctx, sql, args...)
}

func setup(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(context.Background(), pool))
	return pool
}

func ring(t testing.TB, entries ...string) *codec.KeyRing {
	t.Helper()
	r, err := codec.ParseKeyRing(strings.Join(entries, ","))
	require.NoError(t, err)
	return r
}

func newCodec(t *testing.T, db crm.DB, r *codec.KeyRing) *codec.Codec {
	t.Helper()
	c, err := codec.New(codec.Options{Ring: r, DB: db})
	require.NoError(t, err)
	return c
}

// forContact is the codec as the SDK hands it a payload of the contact's journey run.
func forContact(c *codec.Codec, contactID int64) converter.PayloadCodec {
	return c.WithSerializationContext(converter.WorkflowSerializationContext{Namespace: "default", WorkflowID: contract.WorkflowID("welcome", contactID)})
}

func jsonPayload(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

func roundTrip(t *testing.T, enc, dec converter.PayloadCodec, v string) *commonpb.Payload {
	t.Helper()
	out, err := enc.Encode([]*commonpb.Payload{jsonPayload(t, v)})
	require.NoError(t, err)
	require.Equal(t, codec.Encoding, string(out[0].Metadata[converter.MetadataEncoding]))
	require.NotContains(t, string(out[0].Data), v, "encrypted")
	back, err := dec.Decode(out)
	require.NoError(t, err)
	var got string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(back[0], &got))
	require.Equal(t, v, got)
	return out[0]
}

func TestEachContactsPayloadsAreEncryptedUnderItsOwnDataKey(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	c := newCodec(t, pool, ring(t, codec.NewKeyEntry("k1")))
	ada := roundTrip(t, forContact(c, 1), c, "ada@example.com")
	bob := roundTrip(t, forContact(c, 2), c, "bob@example.com")
	shared := roundTrip(t, c, c, "the date scheduler's input")
	cart := roundTrip(t, c.WithSerializationContext(converter.ActivitySerializationContext{WorkflowID: contract.CartWatchID(1)}), c, "cart")

	ids := map[string]string{}
	for name, p := range map[string]*commonpb.Payload{"ada": ada, "bob": bob, "shared": shared, "cart": cart} {
		ids[name] = string(p.Metadata[codec.MetaDataKey])
		require.Equal(t, "k1", string(p.Metadata[codec.MetaKey]))
	}
	require.Equal(t, ids["ada"], ids["cart"], "a contact's cart watch uses the contact's key")
	require.NotEqual(t, ids["ada"], ids["bob"])
	require.NotEqual(t, ids["ada"], ids["shared"])
	k, err := crm.DataKeyByID(context.Background(), pool, ids["bob"])
	require.NoError(t, err)
	require.Equal(t, int64(2), k.ContactID)
	require.NotContains(t, string(k.Wrapped), "bob")
}

func TestPayloadsWrittenBeforeTheCodecDecodeAsTheyAre(t *testing.T) {
	t.Parallel()
	c := newCodec(t, setup(t), ring(t, codec.NewKeyEntry("k1")))
	plain := jsonPayload(t, map[string]any{"journey": "welcome"})
	out, err := c.Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	require.Same(t, plain, out[0])
}

func TestBadPayloadsAreClearErrorsNeverPlainText(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	c := newCodec(t, pool, ring(t, codec.NewKeyEntry("k1")))
	enc, err := forContact(c, 7).Encode([]*commonpb.Payload{jsonPayload(t, "ada@example.com")})
	require.NoError(t, err)
	good := enc[0]
	other, err := forContact(c, 8).Encode([]*commonpb.Payload{jsonPayload(t, "x")})
	require.NoError(t, err)

	clone := func(mut func(p *commonpb.Payload)) *commonpb.Payload {
		p := &commonpb.Payload{Metadata: map[string][]byte{}, Data: append([]byte(nil), good.Data...)}
		for k, v := range good.Metadata {
			p.Metadata[k] = v
		}
		mut(p)
		return p
	}
	cases := map[string]struct {
		p    *commonpb.Payload
		want error
		text string
	}{
		"a flipped bit":  {clone(func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 1 }), codec.ErrTampered, "does not authenticate"},
		"truncated":      {clone(func(p *commonpb.Payload) { p.Data = p.Data[:5] }), codec.ErrTampered, "too short"},
		"an unknown key": {clone(func(p *commonpb.Payload) { p.Metadata[codec.MetaDataKey] = []byte("dk_nope") }), codec.ErrUnknownKey, `data key "dk_nope" is not in this Cairn's database`},
		"another contact's key named": {clone(func(p *commonpb.Payload) {
			p.Metadata[codec.MetaDataKey] = other[0].Metadata[codec.MetaDataKey]
		}), codec.ErrTampered, "does not authenticate"},
		"its key-ring id changed": {clone(func(p *commonpb.Payload) { p.Metadata[codec.MetaKey] = []byte("k9") }), codec.ErrTampered, ""},
		"posing as plain JSON":    {clone(func(p *commonpb.Payload) { p.Metadata[converter.MetadataEncoding] = []byte("json/plain") }), codec.ErrTampered, "Cairn's"},
		"no data key named":       {clone(func(p *commonpb.Payload) { delete(p.Metadata, codec.MetaDataKey) }), codec.ErrTampered, "names no data key"},
	}
	for name, tc := range cases {
		out, err := c.Decode([]*commonpb.Payload{tc.p})
		require.ErrorIs(t, err, tc.want, name)
		require.Contains(t, err.Error(), tc.text, name)
		require.NotContains(t, string(out[0].Data), "ada@example.com", name)
	}
	// A fresh process (empty cache) says the same about an unknown key.
	_, err = newCodec(t, pool, ring(t, codec.NewKeyEntry("k1"))).Decode([]*commonpb.Payload{cases["an unknown key"].p})
	require.ErrorIs(t, err, codec.ErrUnknownKey)
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	k1, k2 := codec.NewKeyEntry("k1"), codec.NewKeyEntry("k2")

	// Payloads written under key 1.
	old := newCodec(t, pool, ring(t, k1))
	p1, err := forContact(old, 1).Encode([]*commonpb.Payload{jsonPayload(t, "written under k1")})
	require.NoError(t, err)
	require.Equal(t, "k1", string(p1[0].Metadata[codec.MetaKey]))

	// A ring without key 1 cannot read them, and says why.
	_, err = newCodec(t, pool, ring(t, k2)).Decode(p1)
	require.ErrorIs(t, err, codec.ErrUnknownKey)
	require.Contains(t, err.Error(), `wrapped by key-ring key "k1", which is not in the key ring (k2)`)

	// Key 2 added as current: both decode; new payloads name key 2; the data keys used are
	// rewrapped under key 2 as they are used.
	both := newCodec(t, pool, ring(t, k2, k1))
	p2, err := forContact(both, 2).Encode([]*commonpb.Payload{jsonPayload(t, "written under k2")})
	require.NoError(t, err)
	require.Equal(t, "k2", string(p2[0].Metadata[codec.MetaKey]))
	for _, p := range [][]*commonpb.Payload{p1, p2} {
		_, err := both.Decode(p)
		require.NoError(t, err)
	}
	again, err := forContact(both, 1).Encode([]*commonpb.Payload{jsonPayload(t, "contact 1 again")})
	require.NoError(t, err)
	require.Equal(t, "k2", string(again[0].Metadata[codec.MetaKey]), "contact 1's key moved to k2 when used")

	// A contact not used since still has its key wrapped by k1 until rewrap.
	p3, err := forContact(old, 3).Encode([]*commonpb.Payload{jsonPayload(t, "contact 3 under k1")})
	require.NoError(t, err)
	n, err := newCodec(t, pool, ring(t, k2, k1)).Rewrap(context.Background())
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 1)

	// Key 1 retired: everything still decodes, and new runs need only key 2.
	only2 := newCodec(t, pool, ring(t, k2))
	for _, p := range [][]*commonpb.Payload{p1, p2, p3, again} {
		_, err := only2.Decode(p)
		require.NoError(t, err)
	}
	roundTrip(t, forContact(only2, 4), only2, "a new run")
	roundTrip(t, forContact(only2, 1), only2, "an old contact's new run")
	var left int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM data_keys WHERE wrapped_by = 'k1'`).Scan(&left))
	require.Zero(t, left)
}

func TestADestroyedKeyDecodesToTheErasedPlaceholder(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	c := newCodec(t, pool, ring(t, codec.NewKeyEntry("k1")))
	ada, err := forContact(c, 1).Encode([]*commonpb.Payload{jsonPayload(t, "ada@example.com")})
	require.NoError(t, err)
	bob, err := forContact(c, 2).Encode([]*commonpb.Payload{jsonPayload(t, "bob@example.com")})
	require.NoError(t, err)
	other := newCodec(t, pool, c.Ring()) // another process, its cache warm
	_, err = other.Decode(bob)
	require.NoError(t, err)

	require.NoError(t, c.Destroy(context.Background(), pool, 1, time.Now()))
	for _, cd := range []*codec.Codec{c, newCodec(t, pool, c.Ring())} {
		out, err := cd.Decode(ada)
		require.NoError(t, err)
		require.Equal(t, codec.Erased, out[0].Data)
		var s string
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(out[0], &s))
		require.Equal(t, "(erased)", s)
		_, err = forContact(cd, 1).Encode([]*commonpb.Payload{jsonPayload(t, "x")})
		require.ErrorIs(t, err, codec.ErrErased, "no new key is made for an erased contact")
		out, err = cd.Decode(bob)
		require.NoError(t, err)
		require.Contains(t, string(out[0].Data), "bob@example.com", "other contacts are untouched")
	}
}

func TestDataKeysAreReadOncePerContactNotPerPayload(t *testing.T) {
	t.Parallel()
	db := &countingDB{Pool: setup(t)}
	c := newCodec(t, db, ring(t, codec.NewKeyEntry("k1")))
	var all []*commonpb.Payload
	for i := 0; i < 200; i++ {
		out, err := forContact(c, int64(1+i%4)).Encode([]*commonpb.Payload{jsonPayload(t, i)})
		require.NoError(t, err)
		all = append(all, out...)
	}
	_, err := c.Decode(all)
	require.NoError(t, err)
	require.LessOrEqual(t, db.reads.Load(), int64(8), "two reads per contact at most (look up, then add)")
}

func TestCompressionBeforeEncryption(t *testing.T) {
	t.Parallel()
	c, err := codec.New(codec.Options{Ring: ring(t, codec.NewKeyEntry("k1")), DB: setup(t), Compress: true})
	require.NoError(t, err)
	big := strings.Repeat("journey step summary ", 200)
	p := roundTrip(t, forContact(c, 1), c, big)
	require.Equal(t, "deflate", string(p.Metadata[codec.MetaCompression]))
	require.Less(t, len(p.Data), len(big)/4)
	small := roundTrip(t, forContact(c, 1), c, "short")
	require.Empty(t, small.Metadata[codec.MetaCompression])
}

func TestKeyRingParsing(t *testing.T) {
	t.Parallel()
	_, err := codec.ParseKeyRing("k1:c2hvcnQ=")
	require.ErrorContains(t, err, "is 5 bytes; keys are 32 bytes")
	_, err = codec.ParseKeyRing("nokey")
	require.ErrorContains(t, err, "is not id:base64key")
	k := codec.NewKeyEntry("a")
	_, err = codec.ParseKeyRing(k + "," + k)
	require.ErrorContains(t, err, "appears twice")
	r, err := codec.ParseKeyRing("# ring\n" + codec.NewKeyEntry("new") + "\n\n" + codec.NewKeyEntry("old") + "\n")
	require.NoError(t, err)
	require.Equal(t, "new", r.Current())
	require.Equal(t, []string{"new", "old"}, r.IDs())
}

func TestFailureMessagesAreEncryptedUnderTheRunsContact(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	c := newCodec(t, pool, ring(t, codec.NewKeyEntry("k1")))
	fc := converter.WithFailureConverterSerializationContext(cluster.FailureConverter(c),
		converter.ActivitySerializationContext{WorkflowID: contract.WorkflowID("welcome", 5)})
	f := fc.ErrorToFailure(errorString("smtp: 550 <ada@example.com> rejected"))
	require.NotContains(t, f.String(), "ada@example.com")
	require.Equal(t, codec.Encoding, string(f.GetEncodedAttributes().GetMetadata()[converter.MetadataEncoding]))
	k, err := crm.ContactDataKey(context.Background(), pool, 5)
	require.NoError(t, err)
	require.Equal(t, k.ID, string(f.GetEncodedAttributes().GetMetadata()[codec.MetaDataKey]))
	require.ErrorContains(t, fc.FailureToError(f), "ada@example.com", "decodes back")
}

type errorString string

func (e errorString) Error() string { return string(e) }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
