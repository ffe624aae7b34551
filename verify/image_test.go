package verify_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/verify"
)

// streamFacts feeds b to a new ImageStream in chunks of random sizes.
func streamFacts(t testing.TB, b []byte, seed uint64) verify.ImageFacts {
	t.Helper()
	s := verify.NewImageStream()
	r := rand.New(rand.NewPCG(seed, 7))
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(200))
		if r.IntN(4) == 0 {
			n = min(len(b), 1+r.IntN(5000))
		}
		if m, err := s.Write(b[:n]); m != n || err != nil {
			t.Fatalf("Write = %d, %v", m, err)
		}
		b = b[n:]
	}
	return s.Facts()
}

func sha(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// checkAgreement asserts that ImageStream and ParseDigicap agree on b.
func checkAgreement(t testing.TB, b []byte, seed uint64) {
	t.Helper()
	d, perr := verify.ParseDigicap(bytes.NewReader(b), int64(len(b)))
	f := streamFacts(t, b, seed)
	if f.Size != int64(len(b)) || f.SHA256 != sha(b) {
		t.Fatalf("stream facts size %d sha %s, want %d %s", f.Size, f.SHA256, len(b), sha(b))
	}
	if (perr == nil) != (f.FormatErr == nil) {
		t.Fatalf("ParseDigicap says %v but the stream says %v", perr, f.FormatErr)
	}
	if perr == nil && !reflect.DeepEqual(d, f.Digicap) {
		t.Fatalf("ParseDigicap found %+v but the stream %+v", d, f.Digicap)
	}
	if (f.FormatErr == nil) != (f.Digicap != nil) {
		t.Fatalf("FormatErr %v with Digicap %v", f.FormatErr, f.Digicap)
	}
	for _, sentinel := range []error{verify.ErrZip, verify.ErrEncrypted, verify.ErrMalformed} {
		if errors.Is(perr, sentinel) != errors.Is(f.FormatErr, sentinel) {
			t.Fatalf("ParseDigicap error %v and stream error %v differ on %v", perr, f.FormatErr, sentinel)
		}
	}
}

func TestImageStreamFindsTheStructure(t *testing.T) {
	b := testimage.Bytes(testimage.Spec{Size: 200000, DeviceClass: 0x77, Extra: []testimage.File{{Name: "empty"}, {Name: "uImage", Data: []byte("kernel")}}})
	f := streamFacts(t, b, 1)
	if f.FormatErr != nil || f.Format != verify.FormatDigicap {
		t.Fatalf("format %q, error %v", f.Format, f.FormatErr)
	}
	if f.Digicap.DeviceClass != 0x77 || len(f.Digicap.Entries) != 4 {
		t.Errorf("digicap %+v", f.Digicap)
	}
}

func TestImageStreamAgreesWithParseDigicap(t *testing.T) {
	specs := map[string]testimage.Spec{
		"a small valid image":          {},
		"a valid image of 300 kB":      {Size: 300000},
		"a valid image with extras":    {Extra: []testimage.File{{Name: "z", Data: []byte{1, 2, 3}}, {Name: "e"}}},
		"an encrypted container":       {Corrupt: testimage.Encrypted},
		"an HK20 container":            {Corrupt: testimage.EncryptedHK20},
		"the vendor's zip":             {Corrupt: testimage.Zip},
		"a bad magic":                  {Corrupt: testimage.BadMagic},
		"a bad header checksum":        {Corrupt: testimage.BadHeaderChecksum},
		"a bad entry checksum":         {Corrupt: testimage.BadEntryChecksum},
		"an entry out of bounds":       {Corrupt: testimage.EntryOutOfBounds},
		"a truncated image":            {Corrupt: testimage.Truncated},
		"a wrong header length":        {Corrupt: testimage.WrongHeaderLength},
		"too many files":               {Corrupt: testimage.TooManyFiles},
		"overlapping entries":          {Corrupt: testimage.OverlappingEntries},
		"an entry checksum off by one": {Corrupt: testimage.BadEntryChecksum, Size: 70000},
	}
	for name, spec := range specs {
		t.Run("the stream and the parser agree on "+name, func(t *testing.T) {
			b := testimage.Bytes(spec)
			for seed := uint64(0); seed < 5; seed++ {
				checkAgreement(t, b, seed)
			}
		})
	}
	t.Run("the stream and the parser agree on every truncation", func(t *testing.T) {
		b := testimage.Bytes(testimage.Spec{Size: 1500})
		for n := 0; n <= len(b); n++ {
			checkAgreement(t, b[:n], uint64(n))
		}
	})
}

func TestImageStreamFactsReflectLaterWrites(t *testing.T) {
	b := testimage.Bytes(testimage.Spec{})
	s := verify.NewImageStream()
	s.Write(b[:100])
	if f := s.Facts(); f.FormatErr == nil {
		t.Fatal("a partial image has no error")
	}
	s.Write(b[100:])
	if f := s.Facts(); f.FormatErr != nil || f.SHA256 != sha(b) {
		t.Fatalf("complete image: %v %s", f.FormatErr, f.SHA256)
	}
}

func TestImageStreamWriteDoesNotAllocate(t *testing.T) {
	b := testimage.Bytes(testimage.Spec{Size: 1 << 20})
	s := verify.NewImageStream()
	s.Write(b[:64<<10]) // past the header
	chunk := b[64<<10 : 128<<10]
	if n := testing.AllocsPerRun(10, func() { s.Write(chunk) }); n != 0 {
		t.Errorf("Write allocates %v times per call", n)
	}
}

func TestInspectFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "digicap.dav")
	size, sum, err := testimage.WriteFile(path, testimage.Spec{Size: 3 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f, err := verify.InspectFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != size || f.SHA256 != sum || f.FormatErr != nil || f.Digicap == nil {
		t.Errorf("facts %+v, want size %d sha %s", f, size, sum)
	}
	if _, err := verify.InspectFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzImageStream(f *testing.F) {
	f.Add(testimage.Bytes(testimage.Spec{Size: fuzzSeedSize}), uint64(1))
	f.Add(testimage.Bytes(testimage.Spec{Size: fuzzSeedSize, Extra: []testimage.File{{Name: "a"}, {Name: "b", Data: []byte("c")}}}), uint64(2))
	for _, c := range testimage.Corruptions() {
		f.Add(testimage.Bytes(testimage.Spec{Corrupt: c, Size: fuzzSeedSize}), uint64(c))
	}
	f.Fuzz(func(t *testing.T, b []byte, seed uint64) {
		checkAgreement(t, b, seed)
	})
}
