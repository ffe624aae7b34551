package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/internal/testimage"
)

func TestImageInspect(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, s testimage.Spec) (string, string) {
		t.Helper()
		p := filepath.Join(dir, name)
		_, sum, err := testimage.WriteFile(p, s)
		if err != nil {
			t.Fatal(err)
		}
		return p, sum
	}
	good, goodSum := write("good.dav", testimage.Spec{Language: 2, DeviceClass: 0x55, OEMCode: 1})
	zip, _ := write("pkg.zip", testimage.Spec{Corrupt: testimage.Zip})
	enc, _ := write("enc.dav", testimage.Spec{Corrupt: testimage.Encrypted})
	trunc, _ := write("trunc.dav", testimage.Spec{Corrupt: testimage.Truncated})
	badsum, _ := write("badsum.dav", testimage.Spec{Corrupt: testimage.BadEntryChecksum})

	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"a valid image shows its facts and entries", []string{"image", "inspect", good}, 0,
			[]string{"sha256:       " + goodSum, "format:       digicap", "language:     2 (Chinese)", "device class: 0x55", "OEM code:     1 (Hikvision)", `"fwagent.id"`, `"firmware.bin"`, "structure:    ok"}},
		{"the vendor's zip is refused with what to do", []string{"image", "inspect", zip}, 1, []string{"format:       zip", "extract digicap.dav"}},
		{"an encrypted container is refused as encrypted", []string{"image", "inspect", enc}, 1, []string{"format:       encrypted", "encrypted container"}},
		{"a truncated image is refused", []string{"image", "inspect", trunc}, 1, []string{"structure:    INVALID", "truncated"}},
		{"a bad entry checksum is refused", []string{"image", "inspect", badsum}, 1, []string{`file "firmware.bin" has checksum`}},
		{"a missing file is refused", []string{"image", "inspect", filepath.Join(dir, "nope")}, 1, []string{"no such file"}},
		{"inspect without a file is a usage error", []string{"image", "inspect"}, 2, []string{"takes 1 argument"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fwctl(t, tt.args...)
			stdout, stderr, code := r.stdout, r.stderr, r.code
			out := stdout + stderr
			if code != tt.code {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestImageInspectJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "digicap.dav")
	size, sum, err := testimage.WriteFile(p, testimage.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	r := fwctl(t, "image", "inspect", "--json", p)
	stdout, stderr, code := r.stdout, r.stderr, r.code
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got struct {
		Size    int64  `json:"size"`
		SHA256  string `json:"sha256"`
		Format  string `json:"format"`
		Valid   bool   `json:"valid"`
		Digicap struct {
			Entries []struct{ Name string } `json:"entries"`
		} `json:"digicap"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	if got.Size != size || got.SHA256 != sum || got.Format != "digicap" || !got.Valid || len(got.Digicap.Entries) != 2 {
		t.Errorf("json %+v", got)
	}
}
