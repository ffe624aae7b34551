package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/manifest"
)

func TestManifestNewBuildsASignablePayload(t *testing.T) {
	dir := t.TempDir()
	image := filepath.Join(dir, "digicap.dav")
	if _, _, err := testimage.WriteFile(image, testimage.Spec{Model: "iDS-9632NXI-I8/16S", Version: "4.1.25", Variant: "custom"}); err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join(dir, "16s.json")
	stdout := mustOK(t, "release", "--image", image, "--model", "iDS-9632NXI-I8/16S", "--version", "4.1.25", "--variant", "custom", "--url", "https://fw.example.com/16s/digicap.dav")
	if err := os.WriteFile(rel, []byte(stdout.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	payload := filepath.Join(dir, "manifest.json")
	mustOK(t, "manifest", "new", "--release", rel, "--serial", "7", "--expires-in", "48h", "-o", payload)
	b, err := os.ReadFile(payload)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.ParsePayload(b, manifest.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Serial != 7 || len(m.Releases) != 1 || m.Releases[0].Version != "4.1.25" {
		t.Fatalf("payload: %+v", m)
	}
	mustOK(t, "keygen", "--out", filepath.Join(dir, "alice"))
	mustOK(t, "sign", "--key", filepath.Join(dir, "alice.key"), "-o", filepath.Join(dir, "manifest.dsse.json"), payload)
	out := mustOK(t, "verify", "--pub", filepath.Join(dir, "alice.pub"), filepath.Join(dir, "manifest.dsse.json"))
	if !strings.Contains(out.stdout, "serial 7") {
		t.Fatalf("verify: %s", out.stdout)
	}
}

func TestManifestNewRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.json")
	if err := os.WriteFile(junk, []byte(`{"id":"x","colour":"red"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"no serial is a usage error", []string{"manifest", "new"}, exitUsage},
		{"a non-positive expiry is a usage error", []string{"manifest", "new", "--serial", "1", "--expires-in", "-1h"}, exitUsage},
		{"a release file with unknown fields is refused", []string{"manifest", "new", "--serial", "1", "--release", junk}, exitInvalid},
		{"a missing release file is refused", []string{"manifest", "new", "--serial", "1", "--release", filepath.Join(dir, "nope.json")}, exitInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if r := fwctl(t, tc.args...); r.code != tc.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tc.code, r.stderr)
			}
		})
	}
}
