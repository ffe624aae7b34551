package fetch

import (
	"io"

	"github.com/fwagent/fwagent/verify"
)

// Sink is a one-pass image inspector: it is fed every byte of the image in
// order, exactly once, and reports what it saw (size, SHA-256, structure).
// *verify.ImageStream is the production Sink.
type Sink interface {
	io.Writer
	Facts() verify.ImageFacts
}

var _ Sink = (*verify.ImageStream)(nil)

// NewImageSink returns the default Sink, a fresh verify.ImageStream.
func NewImageSink() Sink { return verify.NewImageStream() }
