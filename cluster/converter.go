package cluster

import (
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/cairnhq/cairn/codec"
)

// DataConverter is the one data converter of every Temporal client, worker and replayer
// Cairn creates: the SDK's JSON converter, its payloads encrypted by c. The SDK hands it the
// workflow ID of each payload it converts (serialization context), so each contact's
// payloads are encrypted under that contact's data key.
func DataConverter(c *codec.Codec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter puts failure messages and stack traces into an encoded payload, encrypted
// like the rest (an SMTP rejection may quote the recipient's address), under the key of the
// workflow the failure belongs to.
func FailureConverter(c *codec.Codec) converter.FailureConverter {
	return newFailureConverter(DataConverter(c))
}

type failureConverter struct {
	dc converter.DataConverter
	*temporal.DefaultFailureConverter
}

func newFailureConverter(dc converter.DataConverter) *failureConverter {
	return &failureConverter{dc: dc, DefaultFailureConverter: temporal.NewDefaultFailureConverter(
		temporal.DefaultFailureConverterOptions{DataConverter: dc, EncodeCommonAttributes: true})}
}

// WithSerializationContext gives failures of a contact's workflow that contact's key.
func (f *failureConverter) WithSerializationContext(sc converter.SerializationContext) converter.FailureConverter {
	return newFailureConverter(converter.WithDataConverterSerializationContext(f.dc, sc))
}
