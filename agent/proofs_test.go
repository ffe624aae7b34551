package agent_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/verify"
)

// trap is issue 14's attack: a release that declares custom 4.1.25 for the
// protected model but whose image is the standard firmware, published with
// that image's true size and SHA-256, so every check of the file passes.
var trap = lab.Release{ID: "trap", Version: "4.1.25", Variant: "custom", ImageVariant: "standard", ImageVersion: "4.1.30", Size: 256 << 10}

// sameKeyTwice republishes the lab's manifest with the first key's
// signature listed twice.
func sameKeyTwice(t *testing.T, l *lab.Lab) {
	t.Helper()
	m := l.Manifest()
	m.Serial++
	if err := l.PublishSigned(m, l.Key); err != nil {
		t.Fatal(err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(l.Envelope(), &env); err != nil {
		t.Fatal(err)
	}
	env.Signatures = append(env.Signatures, env.Signatures[0])
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.PublishEnvelope(m, b); err != nil {
		t.Fatal(err)
	}
}

// pin appends a policy section pinning digests for the protected model to
// the lab's config and restarts the agent on it.
func (w *world) pin(t *testing.T, digests ...string) {
	t.Helper()
	f, err := os.OpenFile(w.lab.ConfigPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := json.Marshal(digests)
	if _, err := fmt.Fprintf(f, "policy:\n  pins:\n    %q: %s\n", protected, q); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w.reopen(t)
}

// untouched fails unless nothing was downloaded and the simulator saw no
// upload, no flash and no damage.
func (w *world) untouched(t *testing.T) {
	t.Helper()
	if got := w.lab.ImageBytes.Load(); got != 0 {
		t.Errorf("%d image bytes were downloaded for a refused release", got)
	}
	if st := w.state(); st.Uploads != 0 || st.Installs != 0 || st.Bricked || st.Receiving || st.LastUpload != nil {
		t.Errorf("the recorder was touched: %+v", st)
	}
}

// The single-signer attack and its variants are refused before any
// download, with protected_needs_second_proof, on the fresh manifest, on
// the in-process copy a 304 refers to and on the copy a restarted agent
// reads from disk.
func TestSignedStandardImageDeclaredCustomNeedsASecondProof(t *testing.T) {
	tests := []struct {
		name  string
		opts  lab.Options
		setup func(t *testing.T, w *world)
	}{
		{"one key and threshold 1", lab.Options{Keys: 1, Threshold: 1}, nil},
		{"two trusted keys and threshold 1 but signed by one", lab.Options{Keys: 2, Threshold: 1}, func(t *testing.T, w *world) {
			m := w.lab.Manifest()
			m.Serial++
			if err := w.lab.PublishSigned(m, w.lab.Keys[0]); err != nil {
				t.Fatal(err)
			}
		}},
		{"two signatures by the same key", lab.Options{Keys: 1, Threshold: 1}, func(t *testing.T, w *world) { sameKeyTwice(t, w.lab) }},
		{"one signature and a wrong pin", lab.Options{Keys: 1, Threshold: 1}, func(t *testing.T, w *world) {
			w.pin(t, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Releases = []lab.Release{trap}
			w := newWorld(t, tt.opts)
			if tt.setup != nil {
				tt.setup(t, w)
			}
			for i, step := range []string{"fresh manifest", "unchanged manifest (in memory)", "unchanged manifest after a restart"} {
				if i == 2 {
					w.reopen(t)
				}
				out := w.cycle(t, agent.ModeUpdateNow)
				if out.Result != agent.ResultRefused || !slices.Contains(out.Codes, string(verify.CodeProtectedNeedsSecondProof)) {
					t.Fatalf("%s: %s %v (%s), want refused with protected_needs_second_proof", step, out.Result, out.Codes, out.Message)
				}
				if i > 0 && !out.Unchanged {
					t.Errorf("%s: the manifest was fetched again, so the cached path was not exercised", step)
				}
			}
			w.untouched(t)
		})
	}
}

// Versions the protected model's rule must not read as 4.1.25: refused
// before the download, even with two signers and a pin.
func TestProtectedVersionSpellingsAreRefusedBeforeDownload(t *testing.T) {
	for _, v := range []string{"4.1.25.0", "04.01.25", " 4.1.25", "4.1.25 ", "4.1.25 build 200316"} {
		t.Run(fmt.Sprintf("%q", v), func(t *testing.T) {
			w := newWorld(t, lab.Options{Keys: 2, Releases: []lab.Release{{ID: "spelled", Version: v, Variant: "custom", ImageVersion: v}}})
			w.pin(t, w.lab.Manifest().Releases[0].Image.SHA256)
			out := w.cycle(t, agent.ModeUpdateNow)
			if out.Result != agent.ResultRefused || !slices.Contains(out.Codes, string(verify.CodeCustomVersionForbidden)) {
				t.Fatalf("%s %v (%s), want refused with custom_version_forbidden", out.Result, out.Codes, out.Message)
			}
			w.untouched(t)
		})
	}
}

// A pin of the vendor's digest is a second proof: one signer suffices.
func TestPinnedCustomImageInstallsWithOneSigner(t *testing.T) {
	w := newWorld(t, lab.Options{Keys: 1, Releases: []lab.Release{custom4125}})
	w.pin(t, w.lab.Manifest().Releases[0].Image.SHA256)
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("result %s %v (%s), want installed", out.Result, out.Codes, out.Message)
	}
	if st := w.state(); st.Bricked || st.Installs != 1 || st.Firmware != "V4.1.25" || st.Variant != "custom" {
		t.Fatalf("simulator %+v: want one install of custom V4.1.25", st)
	}
}

// Two distinct trusted keys are a second proof whatever the threshold says.
func TestTwoSignersInstallTheCustomImage(t *testing.T) {
	w := newWorld(t, lab.Options{Keys: 2, Threshold: 1, Releases: []lab.Release{custom4125}})
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("result %s %v (%s), want installed", out.Result, out.Codes, out.Message)
	}
	if st := w.state(); st.Bricked || st.Installs != 1 || st.Firmware != "V4.1.25" || st.Variant != "custom" {
		t.Fatalf("simulator %+v: want one install of custom V4.1.25", st)
	}
}

// The trap with two signers and no pin is beyond what the agent can see:
// nothing in a real image tells custom from standard. The pin is the
// operator's defence: with the custom image's digest pinned, the standard
// image is refused before the download even when two keys signed it.
func TestPinOfTheCustomImageStopsTwoSignersWhoErred(t *testing.T) {
	w := newWorld(t, lab.Options{Keys: 2, Releases: []lab.Release{custom4125, {ID: "trap", Models: []string{protected}, Version: "V4.1.25", Variant: "custom", ImageVariant: "standard", ImageVersion: "4.1.30", Size: 8 << 10}}})
	// Only the trap is offered; the honest release's digest is pinned.
	honest := w.lab.Manifest().Releases[0].Image.SHA256
	m := w.lab.Manifest()
	m.Serial++
	m.Releases = m.Releases[1:]
	if err := w.lab.Publish(m); err != nil {
		t.Fatal(err)
	}
	w.pin(t, honest)
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultRefused || !slices.Contains(out.Codes, string(verify.CodeDigestNotPinned)) {
		t.Fatalf("%s %v (%s), want refused with digest_not_pinned", out.Result, out.Codes, out.Message)
	}
	w.untouched(t)
}
