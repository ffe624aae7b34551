package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/manifest"
)

const protected16S = "iDS-9632NXI-I8/16S"

func TestRelease(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "digicap.dav")
	size, sum, err := testimage.WriteFile(img, testimage.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	r := mustOK(t, "release", "--image", img, "--model", "iDS-9632NXI-I8/16S", "--version", "4.1.25",
		"--build", "200316", "--variant", "custom", "--url", "https://fw.example.com/a.dav", "--url", "file:///srv/fw/a.dav")
	var rel manifest.Release
	if err := json.Unmarshal([]byte(r.stdout), &rel); err != nil {
		t.Fatalf("output is not a release: %v\n%s", err, r.stdout)
	}
	if rel.Image.Size != size || rel.Image.SHA256 != sum || rel.ID != "iDS-9632NXI-I8-16S-4.1.25" || len(rel.Image.URLs) != 2 || rel.Build != "200316" {
		t.Fatalf("release %+v, want size %d sha256 %s", rel, size, sum)
	}

	// The first call gave no --expect-sha256: fwctl warns that only a
	// second signer or a pin can catch a wrong file.
	if !strings.Contains(r.stderr, "warning: no --expect-sha256") || !strings.Contains(r.stderr, "second signer") || !strings.Contains(r.stderr, "policy.pins") {
		t.Errorf("no warning without --expect-sha256: %q", r.stderr)
	}
	// With the vendor's digest (any case, spaces around it) there is no warning.
	r = mustOK(t, "release", "--image", img, "--model", protected16S, "--version", "V4.1.25", "--variant", "custom",
		"--url", "https://fw.example.com/a.dav", "--expect-sha256", " "+strings.ToUpper(sum)+" ")
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("a warning although the digest was checked: %q", r.stderr)
	}
	// The standard image a careless integrator downloaded from the wrong page.
	stdImg := filepath.Join(dir, "standard.dav")
	if _, _, err := testimage.WriteFile(stdImg, testimage.Spec{Variant: "standard", Version: "4.1.30"}); err != nil {
		t.Fatal(err)
	}

	garbage := filepath.Join(dir, "notes.txt")
	os.WriteFile(garbage, []byte("this is not firmware at all"), 0o644)
	base := []string{"release", "--model", "iDS-9632NXI-I8/S", "--version", "4.1.30", "--variant", "standard", "--url", "https://fw.example.com/x"}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a file that is not a digicap image is refused", append(base, "--image", garbage), 1, "digicap"},
		{"the format check can be skipped", append(base, "--image", garbage, "--skip-format-check"), 0, ""},
		{"standard firmware for the 16S is refused", []string{"release", "--image", img, "--model", "iDS-9632NXI-I8/16S", "--version", "4.1.30", "--variant", "standard", "--url", "https://x.example.com/a"}, 1, "damage"},
		{"custom firmware other than 4.1.25 for the 16S is refused", []string{"release", "--image", img, "--model", "ids-9632nxi-i8/16s", "--version", "4.1.26", "--variant", "custom", "--url", "https://x.example.com/a"}, 1, "4.1.25"},
		{"custom 4.1.25.0 for the 16S is refused", []string{"release", "--image", img, "--model", protected16S, "--version", "4.1.25.0", "--variant", "custom", "--url", "https://x.example.com/a"}, 1, "exactly 4.1.25"},
		{"custom 04.01.25 for the 16S is refused", []string{"release", "--image", img, "--model", protected16S, "--version", "04.01.25", "--variant", "custom", "--url", "https://x.example.com/a"}, 1, "exactly 4.1.25"},
		{"custom 4.1.25 with a trailing space for the 16S is refused", []string{"release", "--image", img, "--model", protected16S, "--version", "4.1.25 ", "--variant", "custom", "--url", "https://x.example.com/a"}, 1, "exactly 4.1.25"},
		{"a file that does not match --expect-sha256 is refused", []string{"release", "--image", stdImg, "--model", protected16S, "--version", "4.1.25", "--variant", "custom", "--url", "https://x.example.com/a", "--expect-sha256", sum}, 1, "not the expected " + sum},
		{"--expect-sha256 applies to every model", append(base, "--image", stdImg, "--expect-sha256", sum), 1, "not the expected"},
		{"an --expect-sha256 that is no digest is a usage error", []string{"release", "--image", img, "--model", protected16S, "--version", "4.1.25", "--variant", "custom", "--url", "https://x.example.com/a", "--expect-sha256", "abc"}, 2, "not a SHA-256"},
		{"a url with credentials is refused", []string{"release", "--image", img, "--model", "M", "--version", "1.0", "--variant", "custom", "--url", "https://u:p@x.example.com/a"}, 1, "credentials"},
		{"a bad version is refused", []string{"release", "--image", img, "--model", "M", "--version", "new", "--variant", "custom", "--url", "https://x.example.com/a"}, 1, "version"},
		{"a missing image file is refused", append(base, "--image", filepath.Join(dir, "nope")), 1, "no such file"},
		{"an image above --max-size is refused", append(base, "--image", garbage, "--skip-format-check", "--max-size", "10"), 1, "too_large"},
		{"a missing --url is a usage error", []string{"release", "--image", img, "--model", "M", "--version", "1.0", "--variant", "custom"}, 2, "--url"},
		{"a missing --model is a usage error", []string{"release", "--image", img, "--version", "1.0", "--variant", "custom", "--url", "https://x.example.com/a"}, 2, "--model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fwctl(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, tt.code, r.stderr, tt.want)
			}
		})
	}
}
