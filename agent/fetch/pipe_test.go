package fetch

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/fwagent/fwagent/verify"
)

// recordSink keeps every byte it is fed.
type recordSink struct{ got bytes.Buffer }

func (r *recordSink) Write(p []byte) (int, error) { return r.got.Write(p) }
func (r *recordSink) Facts() verify.ImageFacts {
	sum := sha256.Sum256(r.got.Bytes())
	return verify.ImageFacts{Size: int64(r.got.Len()), SHA256: hex.EncodeToString(sum[:])}
}

func TestPipeSinkFeedsEveryByteInOrder(t *testing.T) {
	data := make([]byte, 3*pipeChunk+12345)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	for _, tc := range []struct {
		name  string
		piece int
	}{
		{"in one byte writes around a chunk end", 1},
		{"in writes smaller than a chunk", DefaultBufferSize - 3},
		{"in writes of exactly a chunk", pipeChunk},
		{"in writes larger than a chunk", 2*pipeChunk + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordSink{}
			p := newPipeSink(rec)
			defer p.Close()
			rest := data
			if tc.piece == 1 {
				// One-byte writes for the whole image are slow; do the first
				// chunk's end that way and the rest at once.
				for _, b := range rest[:pipeChunk+2] {
					p.Write([]byte{b})
				}
				rest = rest[pipeChunk+2:]
			}
			half := false
			for len(rest) > 0 {
				n := min(tc.piece, len(rest))
				p.Write(rest[:n])
				rest = rest[n:]
				if !half && len(rest) < len(data)/2 {
					// Facts in the middle sees exactly what was written so far.
					half = true
					if got, want := p.Facts().Size, int64(len(data)-len(rest)); got != want {
						t.Fatalf("Facts mid-way saw %d bytes, want %d", got, want)
					}
				}
			}
			if got := p.Facts(); got.Size != int64(len(data)) || !bytes.Equal(rec.got.Bytes(), data) {
				t.Fatalf("the sink got %d bytes (equal to the input: %v), want %d", got.Size, bytes.Equal(rec.got.Bytes(), data), len(data))
			}
		})
	}
}
