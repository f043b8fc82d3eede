package codec_test

import (
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cairnhq/cairn/codec"
)

// BenchmarkPayload measures one payload of a run's typical size (a 1 KiB event) through the
// codec, its data key cached: encrypt, then decrypt. Compare with "plain": the same payload
// through the SDK's JSON converter alone.
//
//	go test ./codec -run '^$' -bench Payload -benchmem
func BenchmarkPayload(b *testing.B) {
	ev := map[string]any{"id": 42, "name": "Order Completed", "properties": map[string]any{
		"order_id": "o-1234", "total": 99.5, "products": []map[string]any{{"product_id": "p1", "name": "A long product name", "price": 49.75, "quantity": 2}},
		"note": string(make([]byte, 700))}}
	dc := converter.GetDefaultDataConverter()
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			p, _ := dc.ToPayload(ev)
			var out map[string]any
			_ = dc.FromPayload(p, &out)
		}
	})
	for _, compress := range []bool{false, true} {
		name := "codec"
		if compress {
			name = "codec+deflate"
		}
		b.Run(name, func(b *testing.B) {
			c, err := codec.New(codec.Options{Ring: ring(b, codec.NewKeyEntry("k1")), DB: setup(b), Compress: compress})
			if err != nil {
				b.Fatal(err)
			}
			enc := forContact(c, 1)
			cdc := converter.NewCodecDataConverter(dc, enc)
			if _, err := enc.Encode([]*commonpb.Payload{{}}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				p, err := cdc.ToPayload(ev)
				if err != nil {
					b.Fatal(err)
				}
				var out map[string]any
				if err := cdc.FromPayload(p, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
