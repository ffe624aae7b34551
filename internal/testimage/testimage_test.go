package testimage_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/verify"
)

func TestValidImagesParse(t *testing.T) {
	tests := []struct {
		name string
		spec testimage.Spec
	}{
		{"a default image parses", testimage.Spec{}},
		{"a standard image for another model parses", testimage.Spec{Model: "iDS-9632NXI-I8/S", Version: "4.1.64", Variant: "standard"}},
		{"an image of an exact size parses", testimage.Spec{Size: 300000}},
		{"an image with chosen header fields parses", testimage.Spec{Language: 2, DeviceClass: 0x1234, OEMCode: 7}},
		{"an image with extra entries parses", testimage.Spec{Extra: []testimage.File{{Name: "uImage", Data: []byte("kernel")}, {Name: "empty"}, {Name: "a-name-of-exactly-thirty-two-b.x", Data: []byte{0xff}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := testimage.Bytes(tt.spec)
			if tt.spec.Size > 0 && int64(len(b)) != tt.spec.Size {
				t.Errorf("size %d, want %d", len(b), tt.spec.Size)
			}
			d, err := verify.ParseDigicap(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatalf("ParseDigicap: %v", err)
			}
			want := map[string]uint32{"language": 1, "class": testimage.DefaultDeviceClass, "oem": 1}
			if tt.spec.Language != 0 {
				want["language"], want["class"], want["oem"] = tt.spec.Language, tt.spec.DeviceClass, tt.spec.OEMCode
			}
			if d.Language != want["language"] || d.DeviceClass != want["class"] || d.OEMCode != want["oem"] {
				t.Errorf("header fields %d/%#x/%d, want %v", d.Language, d.DeviceClass, d.OEMCode, want)
			}
			if len(d.Entries) != 2+len(tt.spec.Extra) || d.Entries[0].Name != testimage.IdentityEntry || d.Entries[len(d.Entries)-1].Name != testimage.PayloadEntry {
				t.Errorf("entries %+v", d.Entries)
			}
			id, err := testimage.ReadIdentity(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatalf("ReadIdentity: %v", err)
			}
			wantID := testimage.Identity{Model: tt.spec.Model, Version: tt.spec.Version, Variant: tt.spec.Variant}
			if wantID.Model == "" {
				wantID = testimage.Identity{Model: testimage.DefaultModel, Version: testimage.DefaultVersion, Variant: testimage.DefaultVariant}
			}
			if id != wantID {
				t.Errorf("identity %+v, want %+v", id, wantID)
			}
		})
	}
}

func TestCorruptedImagesAreRefused(t *testing.T) {
	for _, c := range testimage.Corruptions() {
		t.Run("an image with "+c.String()+" is refused", func(t *testing.T) {
			b := testimage.Bytes(testimage.Spec{Corrupt: c})
			_, err := verify.ParseDigicap(bytes.NewReader(b), int64(len(b)))
			want := verify.ErrMalformed
			switch c {
			case testimage.Zip:
				want = verify.ErrZip
			case testimage.Encrypted, testimage.EncryptedHK20:
				want = verify.ErrEncrypted
			}
			if !errors.Is(err, want) {
				t.Fatalf("ParseDigicap error %v, want %v", err, want)
			}
			if _, err := testimage.ReadIdentity(bytes.NewReader(b), int64(len(b))); err == nil {
				t.Errorf("ReadIdentity accepted a corrupted image")
			}
		})
	}
}

func TestZipHoldsTheValidImage(t *testing.T) {
	b := testimage.Bytes(testimage.Spec{Corrupt: testimage.Zip, Version: "4.1.30"})
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "digicap.dav" {
		t.Fatalf("zip holds %v", zr.File)
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	inner, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	id, err := testimage.ReadIdentity(bytes.NewReader(inner), int64(len(inner)))
	if err != nil || id.Version != "4.1.30" {
		t.Fatalf("inner identity %+v, %v", id, err)
	}
}

func TestImagesAreDeterministic(t *testing.T) {
	a := testimage.Bytes(testimage.Spec{Size: 100000})
	b := testimage.Bytes(testimage.Spec{Size: 100000})
	c := testimage.Bytes(testimage.Spec{Size: 100000, Version: "4.1.26"})
	if !bytes.Equal(a, b) {
		t.Error("the same spec gave different bytes")
	}
	if bytes.Equal(a, c) {
		t.Error("different identities gave the same bytes")
	}
}

func TestWriteFileReportsSizeAndDigest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digicap.dav")
	size, sum, err := testimage.WriteFile(path, testimage.Spec{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if size != 1<<20 || int64(len(b)) != size || testimage.Digest(b) != sum {
		t.Errorf("WriteFile = %d %s; file has %d bytes, digest %s", size, sum, len(b), testimage.Digest(b))
	}
}

func TestBadSpecsAreErrors(t *testing.T) {
	for name, s := range map[string]testimage.Spec{
		"a size smaller than the header": {Size: 100},
		"an entry name over 32 bytes":    {Extra: []testimage.File{{Name: "a-name-that-is-much-too-long-for-digicap"}}},
		"an empty entry name":            {Extra: []testimage.File{{Data: []byte("x")}}},
		"a size beyond 32-bit offsets":   {Size: 1 << 33},
		"a container smaller than magic": {Corrupt: testimage.Encrypted, Size: 2},
	} {
		t.Run(name+" is an error", func(t *testing.T) {
			if _, err := testimage.Write(io.Discard, s); err == nil {
				t.Error("Write succeeded")
			}
		})
	}
}

func TestParseIdentity(t *testing.T) {
	id, err := testimage.ParseIdentity([]byte("model=iDS-9632NXI-I8/16S\nversion=4.1.25\nvariant=custom\nextra=1\n"))
	if err != nil || id != (testimage.Identity{Model: "iDS-9632NXI-I8/16S", Version: "4.1.25", Variant: "custom"}) {
		t.Errorf("ParseIdentity = %+v, %v", id, err)
	}
	for _, in := range []string{"", "model=x\n", "garbage\n"} {
		if _, err := testimage.ParseIdentity([]byte(in)); err == nil {
			t.Errorf("ParseIdentity(%q) succeeded", in)
		}
	}
}
