package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/manifest"
)

// verified reads and verifies the envelope at path with the public key.
func verified(t *testing.T, path, pubPath string) *manifest.Verified {
	t.Helper()
	pub, err := manifest.LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := manifest.Verify(data, manifest.NewTrust(1, pub), manifest.VerifyOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRolloutSetPauseResume(t *testing.T) {
	dir := t.TempDir()
	alice, bob := keygen(t, dir, "alice"), keygen(t, dir, "bob")
	env := filepath.Join(dir, "m.dsse.json")
	mustOK(t, "sign", "--key", alice+".key", "--key", bob+".key", "-o", env, writeJSON(t, filepath.Join(dir, "m.json"), testPayload(20)))
	stages := "5%@2026-12-01T02:00:00Z,25%@2026-12-03T02:00:00Z,100%@2026-12-07T02:00:00Z"

	mustOK(t, "rollout", "set", "--release", "ids-4.1.25", "--stages", stages, "--key", alice+".key", "--pub", alice+".pub", "--exclude", "VIP-1", env)
	v := verified(t, env, alice+".pub")
	ro := v.Manifest.Releases[0].Rollout
	if v.Manifest.Serial != 21 || ro == nil || ro.ID != "ids-4.1.25" || len(ro.Stages) != 3 || ro.Stages[2].Percent != 100 || ro.Exclude[0] != "VIP-1" {
		t.Fatalf("after set: serial %d rollout %+v", v.Manifest.Serial, ro)
	}
	if len(v.Signers) != 1 {
		t.Fatalf("signers %v: old signatures should be dropped", v.Signers)
	}

	t.Run("pause bumps the serial and sets paused", func(t *testing.T) {
		mustOK(t, "rollout", "pause", "--release", "ids-4.1.25", "--key", alice+".key", "--pub", alice+".pub", "--key", bob+".key", env)
		v := verified(t, env, bob+".pub")
		if v.Manifest.Serial != 22 || !v.Manifest.Releases[0].Rollout.Paused || len(v.Signers) != 1 {
			t.Fatalf("after pause: %+v", v.Manifest.Releases[0].Rollout)
		}
	})
	t.Run("resume to another file leaves the original alone", func(t *testing.T) {
		out := filepath.Join(dir, "resumed.dsse.json")
		mustOK(t, "rollout", "resume", "--release", "ids-4.1.25", "--key", alice+".key", "--pub", alice+".pub", "-o", out, env)
		if v := verified(t, out, alice+".pub"); v.Manifest.Serial != 23 || v.Manifest.Releases[0].Rollout.Paused {
			t.Fatalf("after resume: serial %d", v.Manifest.Serial)
		}
		if v := verified(t, env, alice+".pub"); v.Manifest.Serial != 22 {
			t.Fatalf("original changed to serial %d", v.Manifest.Serial)
		}
	})
	t.Run("the rollout id is kept when stages change", func(t *testing.T) {
		mustOK(t, "rollout", "set", "--release", "ids-4.1.25", "--stages", "1%@2026-12-01T02:00:00Z", "--key", alice+".key", "--pub", alice+".pub", env)
		if ro := verified(t, env, alice+".pub").Manifest.Releases[0].Rollout; ro.ID != "ids-4.1.25" || !ro.Paused || ro.Exclude[0] != "VIP-1" {
			t.Fatalf("rollout %+v", ro)
		}
	})
	t.Run("expires-in sets a new expiry", func(t *testing.T) {
		mustOK(t, "rollout", "resume", "--release", "ids-4.1.25", "--key", alice+".key", "--pub", alice+".pub", "--expires-in", "2h", env)
		m := verified(t, env, alice+".pub").Manifest
		if d := m.Expires.Sub(m.Issued); d != 2*time.Hour {
			t.Fatalf("expires - issued = %s", d)
		}
	})

	before, _ := os.ReadFile(env)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"stages out of order are refused", []string{"rollout", "set", "--release", "ids-4.1.25", "--stages", "50%@2026-12-03T02:00:00Z,5%@2026-12-04T02:00:00Z", "--key", alice + ".key", "--pub", alice + ".pub", env}, 1, "never shrinks"},
		{"an unknown release is refused", []string{"rollout", "pause", "--release", "nope", "--key", alice + ".key", "--pub", alice + ".pub", env}, 1, "ids-4.1.25"},
		{"unparseable stages are a usage error", []string{"rollout", "set", "--release", "ids-4.1.25", "--stages", "lots", "--key", alice + ".key", "--pub", alice + ".pub", env}, 2, "PERCENT"},
		{"a missing --key is a usage error", []string{"rollout", "pause", "--release", "ids-4.1.25", env}, 2, "--key"},
		{"a missing --release is a usage error", []string{"rollout", "pause", "--key", alice + ".key", "--pub", alice + ".pub", env}, 2, "--release"},
		{"rollout without subcommand is a usage error", []string{"rollout"}, 2, "subcommand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fwctl(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, tt.code, r.stderr, tt.want)
			}
			if after, _ := os.ReadFile(env); string(after) != string(before) {
				t.Fatal("a refused command changed the envelope")
			}
		})
	}
}

func TestRolloutPreview(t *testing.T) {
	dir := t.TempDir()
	alice := keygen(t, dir, "alice")
	env := filepath.Join(dir, "m.dsse.json")
	mustOK(t, "sign", "--key", alice+".key", "-o", env, writeJSON(t, filepath.Join(dir, "m.json"), testPayload(1)))
	mustOK(t, "rollout", "set", "--release", "ids-4.1.25", "--key", alice+".key", "--pub", alice+".pub", "--include", "PILOT-1",
		"--stages", "10%@2026-12-01T02:00:00Z,50%@2026-12-03T02:00:00Z", env)

	var lines []string
	want10, want50 := 0, 0
	for i := 0; i < 2000; i++ {
		s := fmt.Sprintf("SN%06d", i)
		lines = append(lines, s)
		b := manifest.Bucket("ids-4.1.25", s)
		if b < 1000 {
			want10++
		}
		if b < 5000 {
			want50++
		}
	}
	devices := filepath.Join(dir, "serials.txt")
	os.WriteFile(devices, []byte("# fleet\n\n"+strings.Join(lines, "\n")+"\n"), 0o644)

	tests := []struct {
		name, at string
		want     string
	}{
		{"before the first stage nobody is eligible", "2026-11-30T00:00:00Z", "0 of 2000 device(s) eligible (0.0%)"},
		{"at the first stage about 10% are eligible", "2026-12-01T02:00:00Z", fmt.Sprintf("%d of 2000 device(s) eligible (%.1f%%)", want10, float64(want10)/20)},
		{"at the second stage about 50% are eligible", "2026-12-05T00:00:00Z", fmt.Sprintf("%d of 2000 device(s) eligible (%.1f%%)", want50, float64(want50)/20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustOK(t, "rollout", "preview", "--release", "ids-4.1.25", "--devices", devices, "--at", tt.at, env)
			if !strings.Contains(r.stdout, tt.want) || strings.Count(r.stdout, "\n") != 2001 {
				t.Fatalf("want %q in:\n%s", tt.want, r.stdout[len(r.stdout)-200:])
			}
		})
	}
	t.Run("an included serial is eligible before the first stage", func(t *testing.T) {
		os.WriteFile(devices, []byte("PILOT-1\nOTHER\n"), 0o644)
		r := mustOK(t, "rollout", "preview", "--release", "ids-4.1.25", "--devices", devices, "--at", "2026-11-30T00:00:00Z", env)
		if !strings.Contains(r.stdout, "PILOT-1\teligible") || !strings.Contains(r.stdout, "OTHER\tnot eligible") {
			t.Fatalf("%s", r.stdout)
		}
	})
	t.Run("a group given on the command line makes devices eligible", func(t *testing.T) {
		mustOK(t, "rollout", "set", "--release", "ids-4.1.25", "--key", alice+".key", "--pub", alice+".pub", "--group", "pilot",
			"--stages", "10%@2026-12-01T02:00:00Z", env)
		r := mustOK(t, "rollout", "preview", "--release", "ids-4.1.25", "--devices", devices, "--group", "pilot", "--at", "2026-11-30T00:00:00Z", env)
		if !strings.Contains(r.stdout, "2 of 2 device(s) eligible") {
			t.Fatalf("%s", r.stdout)
		}
	})
	t.Run("a missing devices file is refused", func(t *testing.T) {
		if r := fwctl(t, "rollout", "preview", "--release", "ids-4.1.25", "--devices", filepath.Join(dir, "none"), env); r.code != 1 {
			t.Fatalf("exit %d", r.code)
		}
	})
}
