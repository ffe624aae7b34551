package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/fwagent/fwagent/manifest"
)

// tamperedCopy writes a copy of the envelope at src whose payload says
// something else (the image moved to an attacker's server, another digest,
// the standard variant) while the signatures are kept: what someone who
// can write the published manifest file makes of it.
func tamperedCopy(t *testing.T, src, dst string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	r := m["releases"].([]any)[0].(map[string]any)
	r["variant"] = "standard"
	r["image"] = map[string]any{"urls": []any{"https://evil.example/digicap.dav"}, "size": 4096, "sha256": strings.Repeat("cd", 32)}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.ParsePayload(b, manifest.ParseOptions{}); err != nil {
		t.Fatalf("the tampered payload must be valid, or the test proves nothing: %v", err)
	}
	env.Payload = base64.StdEncoding.EncodeToString(b)
	out, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestResigningCommandsRefuseATamperedEnvelope: every command that signs
// an existing envelope again checks it with --pub first, so that fwctl
// never vouches for a payload someone changed in the published file.
func TestResigningCommandsRefuseATamperedEnvelope(t *testing.T) {
	dir := t.TempDir()
	r1, r2 := keygen(t, dir, "release-1"), keygen(t, dir, "release-2")
	good := filepath.Join(dir, "good.dsse.json")
	mustOK(t, "sign", "--key", r1+".key", "--key", r2+".key", "-o", good, writeJSON(t, filepath.Join(dir, "m.json"), testPayload(30)))
	now := time.Now().UTC().Truncate(time.Second)
	stages := fmt.Sprintf("5%%@%s,100%%@%s", now.Add(-2*time.Hour).Format(time.RFC3339), now.Add(48*time.Hour).Format(time.RFC3339))
	mustOK(t, "rollout", "set", "--release", "ids-4.1.25", "--stages", stages, "--key", r1+".key", "--key", r2+".key",
		"--pub", r1+".pub", "--pub", r2+".pub", "--threshold", "2", good)
	tampered := tamperedCopy(t, good, filepath.Join(dir, "tampered.dsse.json"))
	oneSig := filepath.Join(dir, "one.dsse.json")
	mustOK(t, "rollout", "pause", "--release", "ids-4.1.25", "--key", r1+".key", "--pub", r1+".pub", "-o", oneSig, good)
	reps := filepath.Join(dir, "reports.jsonl")
	writeReports(t, reps, serialsInBuckets(t, "ids-4.1.25", 0, 500, 10), 0, time.Now().Add(-time.Hour))

	trust2 := []string{"--key", r1 + ".key", "--pub", r1 + ".pub", "--pub", r2 + ".pub", "--threshold", "2"}
	commands := map[string][]string{
		"set":     {"rollout", "set", "--release", "ids-4.1.25", "--stages", stages},
		"pause":   {"rollout", "pause", "--release", "ids-4.1.25"},
		"resume":  {"rollout", "resume", "--release", "ids-4.1.25"},
		"advance": {"rollout", "advance", "--release", "ids-4.1.25", "--reports", reps, "--max-failure-rate", "2%"},
		"sign":    {"sign", "-o", "SELF"},
	}
	cases := []struct {
		name     string
		envelope string
		flags    []string
		code     int
		want     string
	}{
		{"refuses an envelope changed after signing", tampered, trust2, 1, "bad_signature"},
		{"refuses an envelope below the threshold", oneSig, trust2, 1, "threshold_not_met"},
		{"refuses an envelope signed by other keys", tampered, []string{"--key", r1 + ".key", "--pub", filepath.Join(dir, "other.pub")}, 1, "threshold_not_met"},
	}
	keygen(t, dir, "other")
	for name, cmd := range commands {
		for _, tc := range cases {
			t.Run(name+" "+tc.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "env.dsse.json")
				data, _ := os.ReadFile(tc.envelope)
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				args := append(append([]string{}, cmd...), tc.flags...)
				for i, a := range args {
					if a == "SELF" {
						args[i] = path
					}
				}
				r := fwctl(t, append(args, path)...)
				if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "refusing to sign this envelope again") {
					t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, tc.code, r.stderr, tc.want)
				}
				if tc.want == "bad_signature" && !strings.Contains(r.stderr, "changed after signing") {
					t.Errorf("stderr %q does not say the envelope was changed after signing", r.stderr)
				}
				if after, _ := os.ReadFile(path); string(after) != string(data) {
					t.Fatal("a refused command rewrote the envelope")
				}
			})
		}
		if name == "sign" {
			continue
		}
		t.Run(name+" without --pub is a usage error", func(t *testing.T) {
			r := fwctl(t, append(append([]string{}, cmd...), "--key", r1+".key", good)...)
			if r.code != 2 || !strings.Contains(r.stderr, "--pub") {
				t.Fatalf("exit %d stderr %q", r.code, r.stderr)
			}
		})
	}

	t.Run("a genuine envelope meeting the threshold is re-signed", func(t *testing.T) {
		out := filepath.Join(dir, "paused.dsse.json")
		mustOK(t, "rollout", "pause", "--release", "ids-4.1.25", "--key", r1+".key", "--key", r2+".key",
			"--pub", r1+".pub", "--pub", r2+".pub", "--threshold", "2", "-o", out, good)
		if v := verified(t, out, r2+".pub"); !v.Manifest.Releases[0].Rollout.Paused {
			t.Fatal("not paused")
		}
	})
	t.Run("an expired but genuine envelope may be renewed", func(t *testing.T) {
		p := testPayload(40)
		p["issued"] = now.Add(-72 * time.Hour).Format(time.RFC3339)
		p["expires"] = now.Add(-24 * time.Hour).Format(time.RFC3339)
		expired := filepath.Join(dir, "expired.dsse.json")
		mustOK(t, "sign", "--key", r1+".key", "-o", expired, writeJSON(t, filepath.Join(dir, "expired.json"), p))
		mustOK(t, "rollout", "pause", "--release", "ids-4.1.25", "--key", r1+".key", "--pub", r1+".pub", "--expires-in", "24h", expired)
		if v := verified(t, expired, r1+".pub"); v.Manifest.Serial != 41 {
			t.Fatalf("serial %d", v.Manifest.Serial)
		}
	})
}

// TestSignShowsWhatACoSignerSigns: adding a signature without --pub warns
// that nothing was checked and lists the releases; with --pub the existing
// signatures must verify.
func TestSignShowsWhatACoSignerSigns(t *testing.T) {
	dir := t.TempDir()
	r1, r2 := keygen(t, dir, "release-1"), keygen(t, dir, "release-2")
	env := filepath.Join(dir, "m.dsse.json")
	mustOK(t, "sign", "--key", r1+".key", "-o", env, writeJSON(t, filepath.Join(dir, "m.json"), testPayload(5)))
	tampered := tamperedCopy(t, env, filepath.Join(dir, "tampered.dsse.json"))

	t.Run("without --pub the co-signer is warned and sees the releases", func(t *testing.T) {
		r := mustOK(t, "sign", "--key", r2+".key", "-o", filepath.Join(dir, "out.dsse.json"), tampered)
		for _, want := range []string{"NOT checked", `release "ids-4.1.25"`, `models ["iDS-9632NXI-I8/16S"]`, `variant "standard"`, `version "4.1.25"`,
			"sha256 " + strings.Repeat("cd", 32), `urls ["https://evil.example/digicap.dav"]`} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
	})
	t.Run("with --pub a genuine envelope gets the signature without warning", func(t *testing.T) {
		out := filepath.Join(dir, "both.dsse.json")
		r := mustOK(t, "sign", "--key", r2+".key", "--pub", r1+".pub", "-o", out, env)
		if strings.Contains(r.stderr, "NOT checked") || !strings.Contains(r.stderr, `release "ids-4.1.25"`) {
			t.Fatalf("stderr:\n%s", r.stderr)
		}
		mustOK(t, "verify", "--pub", r1+".pub", "--pub", r2+".pub", "--threshold", "2", out)
	})
	t.Run("with --pub a threshold the envelope does not meet is refused", func(t *testing.T) {
		r := fwctl(t, "sign", "--key", r2+".key", "--pub", r1+".pub", "--pub", r2+".pub", "--threshold", "2", env)
		if r.code != 1 || !strings.Contains(r.stderr, "threshold_not_met") || r.stdout != "" {
			t.Fatalf("exit %d stderr %q stdout %d bytes", r.code, r.stderr, len(r.stdout))
		}
	})
	t.Run("a threshold below 1 is a usage error", func(t *testing.T) {
		if r := fwctl(t, "sign", "--key", r2+".key", "--pub", r1+".pub", "--threshold", "0", env); r.code != 2 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
	})
}

// TestSignRefusesAnEnvelopeAboveTheSizeLimit: fwctl never writes an
// envelope devices would refuse to fetch.
func TestSignRefusesAnEnvelopeAboveTheSizeLimit(t *testing.T) {
	dir := t.TempDir()
	r1, r2 := keygen(t, dir, "release-1"), keygen(t, dir, "release-2")
	env := filepath.Join(dir, "m.dsse.json")
	mustOK(t, "sign", "--key", r1+".key", "-o", env, writeJSON(t, filepath.Join(dir, "m.json"), testPayload(5)))
	data, _ := os.ReadFile(env)
	var e dsse.Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	// Signatures by strangers with long key ids are kept as they are; pad
	// the compact envelope to just under the limit, so that the added
	// signature and the indentation push it over.
	const strangers = 40
	for i := 0; i < strangers; i++ {
		e.Signatures = append(e.Signatures, dsse.Signature{KeyID: fmt.Sprintf("%02d", i), Sig: "AA=="})
	}
	compact, _ := json.Marshal(e)
	pad := (manifest.MaxEnvelopeSize - 16 - len(compact)) / strangers
	for i := range e.Signatures[1:] {
		e.Signatures[i+1].KeyID += strings.Repeat("x", pad)
	}
	big, _ := json.Marshal(e)
	if len(big) > manifest.MaxEnvelopeSize || len(big) < manifest.MaxEnvelopeSize-100 {
		t.Fatalf("input is %d bytes, want just under %d", len(big), manifest.MaxEnvelopeSize)
	}
	in := filepath.Join(dir, "big.dsse.json")
	if err := os.WriteFile(in, big, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.dsse.json")
	r := fwctl(t, "sign", "--key", r2+".key", "--pub", r1+".pub", "-o", out, in)
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("the limit is %d", manifest.MaxEnvelopeSize)) {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("an envelope above the limit was written: %v", err)
	}
}
