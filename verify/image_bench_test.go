package verify_test

import (
	"crypto/sha256"
	"testing"

	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/verify"
)

const (
	benchImageSize = 1 << 30
	benchChunk     = 1 << 20
)

// headWriter keeps the first len(buf) bytes written to it and drops the rest.
type headWriter struct {
	buf []byte
	n   int
}

func (w *headWriter) Write(p []byte) (int, error) {
	w.n += copy(w.buf[w.n:], p)
	return len(p), nil
}

// benchChunks returns the first MiB of a valid 1 GiB test image and the
// second one, which repeats for every later MiB (testimage's payload pattern
// has a period that divides 1 MiB), so that a benchmark can stream the whole
// image from two reused buffers.
func benchChunks(b *testing.B) (first, rest []byte) {
	b.Helper()
	w := &headWriter{buf: make([]byte, 2*benchChunk)}
	if _, err := testimage.Write(w, testimage.Spec{Size: benchImageSize}); err != nil {
		b.Fatal(err)
	}
	return w.buf[:benchChunk], w.buf[benchChunk:]
}

// BenchmarkImageStream streams a 1 GiB digicap image through ImageStream in
// 1 MiB writes: SHA-256, size and every entry checksum in one pass.
func BenchmarkImageStream(b *testing.B) {
	first, rest := benchChunks(b)
	b.SetBytes(benchImageSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s := verify.NewImageStream()
		s.Write(first)
		for i := benchChunk; i < benchImageSize; i += benchChunk {
			s.Write(rest)
		}
		if f := s.Facts(); f.FormatErr != nil || f.Size != benchImageSize {
			b.Fatalf("the streamed image is not valid: %v (size %d)", f.FormatErr, f.Size)
		}
	}
}

// BenchmarkRawSHA256 hashes the same bytes with crypto/sha256 alone: the
// speed ImageStream is measured against.
func BenchmarkRawSHA256(b *testing.B) {
	first, rest := benchChunks(b)
	b.SetBytes(benchImageSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h := sha256.New()
		h.Write(first)
		for i := benchChunk; i < benchImageSize; i += benchChunk {
			h.Write(rest)
		}
		h.Sum(nil)
	}
}
