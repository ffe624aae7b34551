package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
)

// ImageFacts is what one pass over an image established.
type ImageFacts struct {
	Size    int64    `json:"size"`
	SHA256  string   `json:"sha256"`            // lowercase hex
	Digicap *Digicap `json:"digicap,omitempty"` // set only when the structure is valid
	Format  Format   `json:"format"`
	// FormatErr says why the image is not a valid digicap.dav (it wraps
	// ErrZip, ErrEncrypted or ErrMalformed); nil when Digicap is set.
	FormatErr error `json:"-"`
}

// streamState is where an ImageStream is in the image.
type streamState int

const (
	stateHeader  streamState = iota // collecting the header
	stateEntries                    // summing entries
	stateDone                       // structure decided (valid so far or failed)
)

// ImageStream inspects an image in one pass as its bytes are written to it,
// in order: it counts them, hashes them with SHA-256 and checks the digicap
// structure, summing every entry as it flows by. It buffers only the header
// (at most 64+44*MaxDigicapEntries bytes), so memory does not grow with the
// image. Feed it with io.MultiWriter while writing the file, then call Facts.
// An ImageStream is not safe for concurrent use.
type ImageStream struct {
	h     hash.Hash
	n     int64
	state streamState
	head  []byte // header bytes collected so far, decoded once complete
	hl    int    // header length, once known
	fmt   Format
	err   error

	d     *Digicap
	order []int  // entry indexes by offset
	cur   int    // position in order
	sum   uint32 // running sum of the current entry
}

// NewImageStream returns an ImageStream at the start of an image.
func NewImageStream() *ImageStream {
	return &ImageStream{h: sha256.New(), fmt: FormatUnknown, head: make([]byte, 0, DigicapFixedHeader)}
}

// streamPiece is how many bytes Write hashes before summing them, so that
// the checksum reads them again from the CPU cache rather than from memory.
const streamPiece = 32 << 10

// Write consumes the next bytes of the image. It never fails: structural
// problems are reported by Facts.
func (s *ImageStream) Write(p []byte) (int, error) {
	for q := p; len(q) > 0; {
		k := min(len(q), streamPiece)
		s.write(q[:k])
		q = q[k:]
	}
	return len(p), nil
}

// write hashes p and checks the structure of its bytes.
func (s *ImageStream) write(p []byte) {
	s.h.Write(p)
	off := s.n
	s.n += int64(len(p))
	q := p
	if s.state == stateHeader {
		q = s.collectHeader(q)
		off = s.n - int64(len(q))
	}
	if s.state == stateEntries && len(q) > 0 {
		s.sumEntries(q, off)
	}
}

// fail records the first structural error and stops checking.
func (s *ImageStream) fail(err error) {
	s.err = err
	s.state = stateDone
	s.head = nil
}

// collectHeader buffers header bytes from p and returns the rest of p.
func (s *ImageStream) collectHeader(p []byte) []byte {
	if len(s.head) < 4 {
		k := min(4-len(s.head), len(p))
		s.head, p = append(s.head, p[:k]...), p[k:]
		if len(s.head) < 4 {
			return nil
		}
		s.fmt = DetectFormat(s.head)
		if s.fmt != FormatDigicap {
			s.fail(formatError(s.fmt, s.head))
			return nil
		}
	}
	if len(s.head) < DigicapFixedHeader {
		k := min(DigicapFixedHeader-len(s.head), len(p))
		s.head, p = append(s.head, p[:k]...), p[k:]
		if len(s.head) < DigicapFixedHeader {
			return nil
		}
		xorHeader(s.head, 0)
		hl, err := headerLength(s.head)
		if err != nil {
			s.fail(err)
			return nil
		}
		s.hl = hl
		h := make([]byte, DigicapFixedHeader, hl)
		copy(h, s.head)
		s.head = h
	}
	k := min(s.hl-len(s.head), len(p))
	s.head, p = append(s.head, p[:k]...), p[k:]
	if len(s.head) < s.hl {
		return nil
	}
	xorHeader(s.head[DigicapFixedHeader:], DigicapFixedHeader)
	d, err := parseHeader(s.head)
	if err != nil {
		s.fail(err)
		return nil
	}
	order, _ := d.byOffset() // parseHeader checked the overlaps
	s.d, s.order, s.head, s.state = d, order, nil, stateEntries
	s.skipEmpty()
	return p
}

// skipEmpty checks and passes over zero-length entries at the cursor.
func (s *ImageStream) skipEmpty() {
	for s.cur < len(s.order) {
		e := s.d.Entries[s.order[s.cur]]
		if e.Length != 0 {
			return
		}
		if e.Checksum != 0 {
			s.fail(checksumError(e, 0))
			return
		}
		s.cur++
	}
	s.state = stateDone
}

// sumEntries adds the bytes of p, which start at file offset off, to the
// entries they belong to.
func (s *ImageStream) sumEntries(p []byte, off int64) {
	for len(p) > 0 && s.state == stateEntries {
		e := s.d.Entries[s.order[s.cur]]
		if skip := int64(e.Offset) - off; skip > 0 {
			if skip >= int64(len(p)) {
				return
			}
			p, off = p[skip:], off+skip
		}
		k := min(e.end()-off, int64(len(p)))
		s.sum += byteSum(p[:k])
		p, off = p[k:], off+k
		if off < e.end() {
			return
		}
		if s.sum != e.Checksum {
			s.fail(checksumError(e, s.sum))
			return
		}
		s.sum = 0
		s.cur++
		s.skipEmpty()
	}
}

// Facts returns what the bytes written so far establish about the image.
// It may be called more than once; later writes update the facts.
func (s *ImageStream) Facts() ImageFacts {
	f := ImageFacts{Size: s.n, SHA256: hex.EncodeToString(s.h.Sum(nil)), Format: s.fmt}
	switch {
	case s.err != nil:
		f.FormatErr = s.err
	case s.state == stateHeader && len(s.head) < 4:
		f.FormatErr = formatError(FormatUnknown, s.head)
	case s.state == stateHeader:
		want := DigicapFixedHeader
		if s.hl > 0 {
			want = s.hl
		}
		f.FormatErr = fmt.Errorf("%w: the file is only %d bytes long, shorter than its %d-byte header: it is truncated; download it again", ErrMalformed, s.n, want)
	case s.state == stateEntries:
		f.FormatErr = s.d.checkBounds(s.n)
		if f.FormatErr == nil { // unreachable: an unfinished entry lies past the end
			f.FormatErr = fmt.Errorf("%w: file %q is incomplete", ErrMalformed, s.d.Entries[s.order[s.cur]].Name)
		}
	default:
		if err := s.d.checkBounds(s.n); err != nil {
			f.FormatErr = err
		} else {
			f.Digicap = s.d
		}
	}
	return f
}

// InspectFile reads the image at path once and returns its facts. The error
// is for failures to read the file; a bad structure is in ImageFacts.FormatErr.
func InspectFile(path string) (ImageFacts, error) {
	f, err := os.Open(path)
	if err != nil {
		return ImageFacts{}, fmt.Errorf("inspect image: %w", err)
	}
	defer f.Close()
	s := NewImageStream()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		s.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return ImageFacts{}, fmt.Errorf("inspect image %s: %w", path, err)
		}
	}
	return s.Facts(), nil
}

var _ io.Writer = (*ImageStream)(nil)
