// Package testimage writes digicap.dav firmware images for tests, the NVR
// simulator and the demo: valid images with chosen header fields and
// entries, and corrupted variants of each kind verify must refuse.
//
// Every image carries an identity entry named fwagent.id whose content is
// key=value lines (model=, version=, variant=), so that the simulator can
// tell what was uploaded (ReadIdentity). Images are written in one pass with
// constant memory whatever their size: payload bytes are a deterministic
// pattern derived from the identity. This package is for tests and
// simulations only: it must never be used to make an image for a real
// device.
package testimage

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"time"
)

// Names of the entries every image carries.
const (
	// IdentityEntry is the entry holding the image's identity lines.
	IdentityEntry = "fwagent.id"
	// PayloadEntry is the entry holding the filler payload.
	PayloadEntry = "firmware.bin"
)

// Defaults for Spec fields left zero.
const (
	DefaultModel       = "iDS-9632NXI-I8/16S"
	DefaultVersion     = "4.1.25"
	DefaultVariant     = "custom"
	DefaultLanguage    = 1    // English/multi-language
	DefaultDeviceClass = 0x2a // an arbitrary device class
	DefaultOEMCode     = 1    // Hikvision
	DefaultPayloadSize = 4096 // payload size when Spec.Size is 0
)

// patternSize is the period of the payload pattern; it divides 1 MiB so that
// every whole MiB of payload past the first is identical.
const patternSize = 64 << 10

// Corruption selects a defect to build into an image.
type Corruption int

// The defects an image can carry. Each one is the only defect of its image.
const (
	// None builds a valid image.
	None Corruption = iota
	// BadMagic changes the header magic.
	BadMagic
	// BadHeaderChecksum stores a wrong header checksum.
	BadHeaderChecksum
	// BadEntryChecksum stores a wrong checksum for the payload entry.
	BadEntryChecksum
	// EntryOutOfBounds makes the payload entry one byte longer than the file.
	EntryOutOfBounds
	// Truncated cuts the file in the middle of the payload.
	Truncated
	// WrongHeaderLength stores a header length that does not match the
	// file count.
	WrongHeaderLength
	// TooManyFiles declares more files than verify.MaxDigicapEntries.
	TooManyFiles
	// OverlappingEntries makes the payload entry start inside the entry
	// before it.
	OverlappingEntries
	// Zip wraps the valid image in a zip archive as digicap.dav, like the
	// vendor's download package.
	Zip
	// Encrypted writes an HK30 encrypted container.
	Encrypted
	// EncryptedHK20 writes an HK20 encrypted container.
	EncryptedHK20
)

var corruptionNames = map[Corruption]string{
	None: "none", BadMagic: "bad magic", BadHeaderChecksum: "bad header checksum",
	BadEntryChecksum: "bad entry checksum", EntryOutOfBounds: "entry out of bounds",
	Truncated: "truncated", WrongHeaderLength: "wrong header length",
	TooManyFiles: "too many files", OverlappingEntries: "overlapping entries",
	Zip: "zip package", Encrypted: "HK30 encrypted container", EncryptedHK20: "HK20 encrypted container",
}

// String names the corruption for test names and logs.
func (c Corruption) String() string {
	if s, ok := corruptionNames[c]; ok {
		return s
	}
	return fmt.Sprintf("corruption(%d)", int(c))
}

// Corruptions lists every defect (all but None).
func Corruptions() []Corruption {
	return []Corruption{BadMagic, BadHeaderChecksum, BadEntryChecksum, EntryOutOfBounds, Truncated,
		WrongHeaderLength, TooManyFiles, OverlappingEntries, Zip, Encrypted, EncryptedHK20}
}

// File is an extra entry to put in an image.
type File struct {
	Name string
	Data []byte
}

// Spec describes the image to build. Zero fields take the Default values.
type Spec struct {
	Model, Version, Variant        string // written to the fwagent.id entry
	Build                          string // optional build date, e.g. "200316", written to fwagent.id
	Size                           int64  // total file size of the digicap image; 0 = small
	Language, DeviceClass, OEMCode uint32
	Extra                          []File // entries between fwagent.id and the payload
	Corrupt                        Corruption
}

func (s Spec) withDefaults() Spec {
	if s.Model == "" {
		s.Model = DefaultModel
	}
	if s.Version == "" {
		s.Version = DefaultVersion
	}
	if s.Variant == "" {
		s.Variant = DefaultVariant
	}
	if s.Language == 0 {
		s.Language = DefaultLanguage
	}
	if s.DeviceClass == 0 {
		s.DeviceClass = DefaultDeviceClass
	}
	if s.OEMCode == 0 {
		s.OEMCode = DefaultOEMCode
	}
	return s
}

// identityBytes is the content of the fwagent.id entry.
func identityBytes(s Spec) []byte {
	id := fmt.Sprintf("model=%s\nversion=%s\nvariant=%s\n", s.Model, s.Version, s.Variant)
	if s.Build != "" {
		id += "build=" + s.Build + "\n"
	}
	return []byte(id)
}

// digicapKey obfuscates the header (FACTS.md), written out here on purpose
// rather than shared with verify, so that the two implementations check
// each other.
var digicapKey = [16]byte{0xBA, 0xCD, 0xBC, 0xFE, 0xD6, 0xCA, 0xDD, 0xD3, 0xBA, 0xB9, 0xA3, 0xAB, 0xBF, 0xCB, 0xB5, 0xBE}

// pattern is the payload filler: file byte o is pattern[o%patternSize].
type pattern []byte

func newPattern(s Spec) pattern {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s", s.Model, s.Version, s.Variant)
	x := h.Sum64() | 1
	p := make(pattern, patternSize)
	for i := 0; i < len(p); i += 8 {
		// splitmix64
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		z ^= z >> 31
		binary.LittleEndian.PutUint64(p[i:], z)
	}
	return p
}

// sum returns the byte sum of file offsets [from, to).
func (p pattern) sum(from, to int64) uint32 {
	var whole uint32
	for _, c := range p {
		whole += uint32(c)
	}
	var s uint32
	for from < to {
		i := from % patternSize
		n := min(int64(patternSize)-i, to-from)
		if i == 0 && n == patternSize {
			s += whole
		} else {
			for _, c := range p[i : i+n] {
				s += uint32(c)
			}
		}
		from += n
	}
	return s
}

// write writes file offsets [from, to) of the pattern.
func (p pattern) write(w io.Writer, from, to int64) error {
	for from < to {
		i := from % patternSize
		n := min(int64(patternSize)-i, to-from)
		if _, err := w.Write(p[i : i+n]); err != nil {
			return err
		}
		from += n
	}
	return nil
}

func sumBytes(b []byte) uint32 {
	var s uint32
	for _, c := range b {
		s += uint32(c)
	}
	return s
}

type entry struct {
	name                     string
	data                     []byte // nil for the payload
	offset, length, checksum uint32
}

// Write writes the image described by s to w and returns the bytes written.
func Write(w io.Writer, s Spec) (int64, error) {
	s = s.withDefaults()
	cw := &countWriter{w: w}
	var err error
	switch s.Corrupt {
	case Zip:
		err = writeZip(cw, s)
	case Encrypted, EncryptedHK20:
		err = writeEncrypted(cw, s)
	default:
		err = writeDigicap(cw, s)
	}
	return cw.n, err
}

func writeDigicap(w io.Writer, s Spec) error {
	for _, f := range append([]File{{Name: IdentityEntry}}, s.Extra...) {
		if f.Name == "" || len(f.Name) > 32 {
			return fmt.Errorf("testimage: entry name %q must be 1 to 32 bytes", f.Name)
		}
	}
	entries := []entry{{name: IdentityEntry, data: identityBytes(s)}}
	for _, f := range s.Extra {
		entries = append(entries, entry{name: f.Name, data: f.Data})
	}
	entries = append(entries, entry{name: PayloadEntry})
	n := len(entries)
	hl := int64(64 + 44*n)
	off := hl
	for i := range entries[:n-1] {
		entries[i].offset = uint32(off)
		entries[i].length = uint32(len(entries[i].data))
		entries[i].checksum = sumBytes(entries[i].data)
		off += int64(len(entries[i].data))
	}
	payload := int64(DefaultPayloadSize)
	if s.Size > 0 {
		payload = s.Size - off
		if payload < 0 {
			return fmt.Errorf("testimage: size %d is too small: the header and entries alone take %d bytes", s.Size, off)
		}
	}
	total := off + payload
	if total > 1<<32-1 {
		return fmt.Errorf("testimage: size %d does not fit digicap's 32-bit offsets", total)
	}
	pat := newPattern(s)
	pe := &entries[n-1]
	pe.offset, pe.length, pe.checksum = uint32(off), uint32(payload), pat.sum(off, total)

	fileCount, hlField, magic := uint32(n), uint32(hl), uint32(0x484B5753)
	switch s.Corrupt {
	case BadMagic:
		magic ^= 0x01000000
	case BadEntryChecksum:
		pe.checksum++
	case EntryOutOfBounds:
		pe.length++
	case WrongHeaderLength:
		hlField += 44
	case TooManyFiles:
		fileCount, hlField = 1025, 64+44*1025
	case OverlappingEntries:
		pe.offset--
	}

	h := make([]byte, hl)
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint32(h[8:], hlField)
	binary.LittleEndian.PutUint32(h[12:], fileCount)
	binary.LittleEndian.PutUint32(h[16:], s.Language)
	binary.LittleEndian.PutUint32(h[20:], s.DeviceClass)
	binary.LittleEndian.PutUint32(h[24:], s.OEMCode)
	copy(h[28:64], "fwagent test image, not firmware")
	for i, e := range entries {
		b := h[64+44*i:]
		copy(b[:32], e.name)
		binary.LittleEndian.PutUint32(b[32:], e.offset)
		binary.LittleEndian.PutUint32(b[36:], e.length)
		binary.LittleEndian.PutUint32(b[40:], e.checksum)
	}
	hsum := sumBytes(h[12:])
	if s.Corrupt == BadHeaderChecksum {
		hsum++
	}
	binary.LittleEndian.PutUint32(h[4:], hsum)
	for i := range h {
		h[i] ^= digicapKey[(i+i/16)%16]
	}

	if s.Corrupt == Truncated {
		w = &cutWriter{w: w, left: off + payload/2}
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	for _, e := range entries[:n-1] {
		if _, err := w.Write(e.data); err != nil {
			return err
		}
	}
	return pat.write(w, off, total)
}

func writeZip(w io.Writer, s Spec) error {
	zw := zip.NewWriter(w)
	f, err := zw.CreateHeader(&zip.FileHeader{Name: "digicap.dav", Method: zip.Store, Modified: time.Date(2020, 3, 16, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		return err
	}
	inner := s
	inner.Corrupt = None
	if err := writeDigicap(f, inner); err != nil {
		return err
	}
	return zw.Close()
}

func writeEncrypted(w io.Writer, s Spec) error {
	magic := "HK30"
	if s.Corrupt == EncryptedHK20 {
		magic = "HK20"
	}
	size := s.Size
	if size == 0 {
		size = DefaultPayloadSize
	}
	if size < 4 {
		return fmt.Errorf("testimage: size %d is too small for a container", size)
	}
	if _, err := io.WriteString(w, magic); err != nil {
		return err
	}
	return newPattern(s).write(w, 4, size)
}

// WriteFile writes the image described by s to path and returns its size and
// lowercase hex SHA-256.
func WriteFile(path string, s Spec) (size int64, sha256hex string, err error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, "", err
	}
	h := sha256.New()
	size, err = Write(io.MultiWriter(f, h), s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, "", fmt.Errorf("testimage: write %s: %w", path, err)
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// MaxBytesSize caps the size Bytes builds in memory.
const MaxBytesSize = 64 << 20

// Bytes returns the image described by s, for small test images. It panics
// when s is invalid or larger than MaxBytesSize: use Write for big images.
func Bytes(s Spec) []byte {
	if s.Size > MaxBytesSize {
		panic(fmt.Sprintf("testimage.Bytes: size %d is over %d: use Write or WriteFile", s.Size, MaxBytesSize))
	}
	var b bytesWriter
	if _, err := Write(&b, s); err != nil {
		panic(err)
	}
	return b
}

// Digest returns the lowercase hex SHA-256 of b.
func Digest(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

type bytesWriter []byte

func (b *bytesWriter) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// cutWriter passes on the first left bytes and silently drops the rest.
type cutWriter struct {
	w    io.Writer
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.left <= 0 {
		return len(p), nil
	}
	q := p[:min(int64(len(p)), c.left)]
	n, err := c.w.Write(q)
	c.left -= int64(n)
	if err != nil {
		return n, err
	}
	return len(p), nil
}

var errNoIdentity = errors.New("the image has no fwagent.id entry: it was not built by testimage")
