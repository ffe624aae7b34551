package verify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Digicap layout constants (see FACTS.md).
const (
	// DigicapMagic is the decoded magic at offset 0 ("SWKH" little-endian).
	DigicapMagic = 0x484B5753
	// DigicapFixedHeader is the size of the fixed part of the header.
	DigicapFixedHeader = 64
	// DigicapEntrySize is the size of one file entry in the header.
	DigicapEntrySize = 44
	// DigicapNameSize is the size of the NUL-padded name in an entry.
	DigicapNameSize = 32
	// MaxDigicapEntries caps the file count a header may declare.
	MaxDigicapEntries = 1024
)

// digicapKey obfuscates the header: byte i is XORed with
// digicapKey[(i+i/16)%16].
var digicapKey = [16]byte{0xBA, 0xCD, 0xBC, 0xFE, 0xD6, 0xCA, 0xDD, 0xD3, 0xBA, 0xB9, 0xA3, 0xAB, 0xBF, 0xCB, 0xB5, 0xBE}

// xorHeader decodes (or encodes) b in place, b being the header bytes that
// start at file offset off.
func xorHeader(b []byte, off int) {
	for j := range b {
		i := off + j
		b[j] ^= digicapKey[(i+i/16)%16]
	}
}

// Format names the kind of file an image is.
type Format string

// The formats an image may have.
const (
	// FormatDigicap is a Hikvision digicap.dav image (valid or not: see
	// ImageFacts.FormatErr).
	FormatDigicap Format = "digicap"
	// FormatZip is a zip archive, usually the vendor's download package.
	FormatZip Format = "zip"
	// FormatEncrypted is an HK20/HK30 encrypted container.
	FormatEncrypted Format = "encrypted"
	// FormatUnknown is anything else.
	FormatUnknown Format = "unknown"
)

// DetectFormat names the format of a file from its first bytes (at least 4
// are needed; fewer give FormatUnknown).
func DetectFormat(prefix []byte) Format {
	if len(prefix) < 4 {
		return FormatUnknown
	}
	switch {
	case bytes.Equal(prefix[:4], []byte("PK\x03\x04")):
		return FormatZip
	case bytes.Equal(prefix[:4], []byte("HK20")), bytes.Equal(prefix[:4], []byte("HK30")):
		return FormatEncrypted
	}
	var m [4]byte
	copy(m[:], prefix[:4])
	xorHeader(m[:], 0)
	if binary.LittleEndian.Uint32(m[:]) == DigicapMagic {
		return FormatDigicap
	}
	return FormatUnknown
}

// formatError returns the error for a file that is not a digicap image.
func formatError(f Format, prefix []byte) error {
	switch f {
	case FormatZip:
		return ErrZip
	case FormatEncrypted:
		return fmt.Errorf("%w (magic %q)", ErrEncrypted, prefix[:4])
	}
	if len(prefix) < 4 {
		return fmt.Errorf("%w: the file is only %d bytes long: it is truncated or not a firmware image", ErrMalformed, len(prefix))
	}
	return fmt.Errorf("%w: bad magic % x: this is not a digicap.dav firmware image", ErrMalformed, prefix[:4])
}

// Entry is one file inside a digicap image.
type Entry struct {
	Name     string `json:"name"`
	Offset   uint32 `json:"offset"`
	Length   uint32 `json:"length"`
	Checksum uint32 `json:"checksum"` // sum of the entry's bytes, uint32 wrapping
}

// end returns the offset just past the entry.
func (e Entry) end() int64 { return int64(e.Offset) + int64(e.Length) }

// Digicap is the checked structure of a digicap.dav image.
type Digicap struct {
	Language     uint32  `json:"language"`     // 1 English/multi-language, 2 Chinese
	DeviceClass  uint32  `json:"device_class"` // hardware family the image is for
	OEMCode      uint32  `json:"oem_code"`     // 1 = Hikvision
	HeaderLength uint32  `json:"header_length"`
	Entries      []Entry `json:"entries"` // in header order
}

// Entry returns the entry with the given name.
func (d *Digicap) Entry(name string) (Entry, bool) {
	for _, e := range d.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// headerLength checks the decoded fixed header (64 bytes) and returns the
// header length it declares.
func headerLength(fixed []byte) (int, error) {
	if m := binary.LittleEndian.Uint32(fixed[0:]); m != DigicapMagic {
		return 0, fmt.Errorf("%w: bad magic 0x%08x (want 0x%08x): this is not a digicap.dav firmware image", ErrMalformed, m, DigicapMagic)
	}
	hl := binary.LittleEndian.Uint32(fixed[8:])
	n := binary.LittleEndian.Uint32(fixed[12:])
	if n == 0 {
		return 0, fmt.Errorf("%w: the header lists no files: the image is corrupt; download it again", ErrMalformed)
	}
	if n > MaxDigicapEntries {
		return 0, fmt.Errorf("%w: the header lists %d files, more than the %d allowed: the image is corrupt; download it again", ErrMalformed, n, MaxDigicapEntries)
	}
	want := uint32(DigicapFixedHeader + DigicapEntrySize*n)
	if hl != want {
		return 0, fmt.Errorf("%w: header length %d does not match %d files (want %d): the image is corrupt; download it again", ErrMalformed, hl, n, want)
	}
	return int(hl), nil
}

// parseHeader checks a complete decoded header and returns its structure.
// It checks everything but the file size and the entry checksums.
func parseHeader(h []byte) (*Digicap, error) {
	var sum uint32
	for _, b := range h[12:] {
		sum += uint32(b)
	}
	if want := binary.LittleEndian.Uint32(h[4:]); sum != want {
		return nil, fmt.Errorf("%w: header checksum is 0x%08x but the header says 0x%08x: the image is corrupt; download it again", ErrMalformed, sum, want)
	}
	n := int(binary.LittleEndian.Uint32(h[12:]))
	d := &Digicap{
		Language:     binary.LittleEndian.Uint32(h[16:]),
		DeviceClass:  binary.LittleEndian.Uint32(h[20:]),
		OEMCode:      binary.LittleEndian.Uint32(h[24:]),
		HeaderLength: uint32(len(h)),
		Entries:      make([]Entry, n),
	}
	for i := range d.Entries {
		e := h[DigicapFixedHeader+DigicapEntrySize*i:]
		name := e[:DigicapNameSize]
		if k := bytes.IndexByte(name, 0); k >= 0 {
			name = name[:k]
		}
		d.Entries[i] = Entry{
			Name:     string(name),
			Offset:   binary.LittleEndian.Uint32(e[32:]),
			Length:   binary.LittleEndian.Uint32(e[36:]),
			Checksum: binary.LittleEndian.Uint32(e[40:]),
		}
		if len(name) == 0 {
			return nil, fmt.Errorf("%w: file %d in the header has no name: the image is corrupt; download it again", ErrMalformed, i)
		}
		if int64(d.Entries[i].Offset) < int64(len(h)) {
			return nil, fmt.Errorf("%w: file %q starts at offset %d, inside the %d-byte header: the image is corrupt; download it again", ErrMalformed, name, d.Entries[i].Offset, len(h))
		}
	}
	if _, err := d.byOffset(); err != nil {
		return nil, err
	}
	return d, nil
}

// byOffset returns the entry indexes sorted by offset, or an error when
// entries overlap.
func (d *Digicap) byOffset() ([]int, error) {
	idx := make([]int, len(d.Entries))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return d.Entries[idx[a]].Offset < d.Entries[idx[b]].Offset })
	for k := 1; k < len(idx); k++ {
		p, e := d.Entries[idx[k-1]], d.Entries[idx[k]]
		if p.end() > int64(e.Offset) {
			return nil, fmt.Errorf("%w: files %q and %q overlap: the image is corrupt; download it again", ErrMalformed, p.Name, e.Name)
		}
	}
	return idx, nil
}

// checkBounds checks that every entry lies inside a file of size bytes.
func (d *Digicap) checkBounds(size int64) error {
	for _, e := range d.Entries {
		if e.end() > size {
			return fmt.Errorf("%w: file %q ends at offset %d, past the end of the %d-byte image: the image is truncated or corrupt; download it again", ErrMalformed, e.Name, e.end(), size)
		}
	}
	return nil
}

// checksumError reports an entry whose bytes do not add up.
func checksumError(e Entry, got uint32) error {
	return fmt.Errorf("%w: file %q has checksum 0x%08x but the header says 0x%08x: the image is corrupt; download it again", ErrMalformed, e.Name, got, e.Checksum)
}

// ParseDigicap reads and checks the digicap.dav image in r (size bytes):
// the obfuscated header, its magic, length, file count and checksum, that
// every entry lies inside the file after the header without overlapping
// another, and every entry's checksum. A zip gives ErrZip, an HK20/HK30
// container ErrEncrypted, anything else wrong an error wrapping ErrMalformed.
func ParseDigicap(r io.ReaderAt, size int64) (*Digicap, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size %d", ErrMalformed, size)
	}
	fixed := make([]byte, DigicapFixedHeader)
	got, err := r.ReadAt(fixed[:min(int64(len(fixed)), size)], 0)
	if err != nil && !(errors.Is(err, io.EOF) && int64(got) == min(int64(len(fixed)), size)) {
		return nil, fmt.Errorf("read the image header: %w", err)
	}
	if f := DetectFormat(fixed[:got]); f != FormatDigicap {
		return nil, formatError(f, fixed[:got])
	}
	if size < DigicapFixedHeader {
		return nil, fmt.Errorf("%w: the file is only %d bytes long, shorter than a header: it is truncated; download it again", ErrMalformed, size)
	}
	xorHeader(fixed, 0)
	hl, err := headerLength(fixed)
	if err != nil {
		return nil, err
	}
	if int64(hl) > size {
		return nil, fmt.Errorf("%w: the %d-byte header is longer than the %d-byte file: it is truncated; download it again", ErrMalformed, hl, size)
	}
	h := make([]byte, hl)
	copy(h, fixed)
	if n, err := r.ReadAt(h[DigicapFixedHeader:], DigicapFixedHeader); n < hl-DigicapFixedHeader {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read the image header: %w", err)
	}
	xorHeader(h[DigicapFixedHeader:], DigicapFixedHeader)
	d, err := parseHeader(h)
	if err != nil {
		return nil, err
	}
	if err := d.checkBounds(size); err != nil {
		return nil, err
	}
	buf := make([]byte, 256<<10)
	for _, e := range d.Entries {
		var sum uint32
		for off, end := int64(e.Offset), e.end(); off < end; {
			chunk := buf[:min(int64(len(buf)), end-off)]
			n, err := r.ReadAt(chunk, off)
			if n < len(chunk) {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return nil, fmt.Errorf("read file %q of the image: %w", e.Name, err)
			}
			sum += byteSum(chunk)
			off += int64(n)
		}
		if sum != e.Checksum {
			return nil, checksumError(e, sum)
		}
	}
	return d, nil
}
