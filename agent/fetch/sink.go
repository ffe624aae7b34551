package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

// ImageFacts is what a Sink learned from the bytes it was fed.
type ImageFacts struct {
	Size   int64
	SHA256 string // lowercase hex
}

// Sink is a one-pass image inspector: it is fed every byte of the image in
// order, exactly once, and reports what it saw.
type Sink interface {
	io.Writer
	Facts() ImageFacts
}

// NewHashSink returns a Sink that counts and hashes (SHA-256) what it is fed.
func NewHashSink() Sink { return &hashSink{h: sha256.New()} }

type hashSink struct {
	h hash.Hash
	n int64
}

func (s *hashSink) Write(p []byte) (int, error) {
	s.h.Write(p)
	s.n += int64(len(p))
	return len(p), nil
}

func (s *hashSink) Facts() ImageFacts {
	return ImageFacts{Size: s.n, SHA256: hex.EncodeToString(s.h.Sum(nil))}
}
