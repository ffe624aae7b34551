package verify_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/verify"
)

func TestParseDigicapReportsTheHeader(t *testing.T) {
	b := testimage.Bytes(testimage.Spec{Language: 2, DeviceClass: 0x55, OEMCode: 1, Extra: []testimage.File{{Name: "uImage", Data: []byte("kernel bytes")}}})
	d, err := verify.ParseDigicap(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if d.Language != 2 || d.DeviceClass != 0x55 || d.OEMCode != 1 || d.HeaderLength != 64+44*3 {
		t.Errorf("header %+v", d)
	}
	e, ok := d.Entry("uImage")
	if !ok || e.Length != 12 || string(b[e.Offset:e.Offset+e.Length]) != "kernel bytes" {
		t.Errorf("uImage entry %+v, found %v", e, ok)
	}
	if _, ok := d.Entry("missing"); ok {
		t.Error("found an entry that is not there")
	}
}

func TestParseDigicapRefusesEveryTruncation(t *testing.T) {
	b := testimage.Bytes(testimage.Spec{Size: 2000})
	for n := 0; n < len(b); n++ {
		if _, err := verify.ParseDigicap(bytes.NewReader(b[:n]), int64(n)); !errors.Is(err, verify.ErrMalformed) {
			t.Fatalf("the image cut to %d of %d bytes gave %v, want ErrMalformed", n, len(b), err)
		}
	}
}

func TestParseDigicapRefusesAFlippedPayloadByte(t *testing.T) {
	b := testimage.Bytes(testimage.Spec{})
	b[len(b)-1]++
	if _, err := verify.ParseDigicap(bytes.NewReader(b), int64(len(b))); !errors.Is(err, verify.ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
}

func TestDetectFormat(t *testing.T) {
	for name, tt := range map[string]struct {
		b    []byte
		want verify.Format
	}{
		"a digicap image is digicap":     {testimage.Bytes(testimage.Spec{}), verify.FormatDigicap},
		"a zip is zip":                   {testimage.Bytes(testimage.Spec{Corrupt: testimage.Zip}), verify.FormatZip},
		"an HK30 container is encrypted": {[]byte("HK30...."), verify.FormatEncrypted},
		"an HK20 container is encrypted": {[]byte("HK20...."), verify.FormatEncrypted},
		"text is unknown":                {[]byte("hello world"), verify.FormatUnknown},
		"three bytes are unknown":        {[]byte("PK\x03"), verify.FormatUnknown},
	} {
		t.Run(name, func(t *testing.T) {
			if got := verify.DetectFormat(tt.b); got != tt.want {
				t.Errorf("DetectFormat = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseDigicap(f *testing.F) {
	f.Add(testimage.Bytes(testimage.Spec{Size: fuzzSeedSize}))
	f.Add(testimage.Bytes(testimage.Spec{Size: fuzzSeedSize, Extra: []testimage.File{{Name: "a", Data: []byte("b")}, {Name: "c"}}}))
	for _, c := range testimage.Corruptions() {
		f.Add(testimage.Bytes(testimage.Spec{Corrupt: c, Size: fuzzSeedSize}))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := verify.ParseDigicap(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, verify.ErrMalformed) && !errors.Is(err, verify.ErrZip) && !errors.Is(err, verify.ErrEncrypted) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		for _, e := range d.Entries {
			if int64(e.Offset)+int64(e.Length) > int64(len(b)) || e.Offset < d.HeaderLength || e.Name == "" {
				t.Fatalf("accepted entry %+v in a %d-byte file", e, len(b))
			}
			var s uint32
			for _, c := range b[e.Offset : e.Offset+e.Length] {
				s += uint32(c)
			}
			if s != e.Checksum {
				t.Fatalf("accepted entry %+v with sum %#x", e, s)
			}
		}
	})
}

// fuzzSeedSize keeps fuzz seeds small: the fuzzer minimizes every new
// input, which takes long on kilobyte-sized ones.
const fuzzSeedSize = 400
