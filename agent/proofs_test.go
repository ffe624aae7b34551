package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device/isapi"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
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

// shortDevice gives the agent an ISAPI backend with short flash and reboot
// timeouts, for recorders that stop answering.
func (w *world) shortDevice(t *testing.T, flash, reboot time.Duration) {
	t.Helper()
	w.fast(t, reboot)
	c := w.agent.Config.Device.ISAPI
	dev, err := isapi.New(isapi.Config{
		BaseURL: c.URL, Username: c.Username, Password: c.Password, CertSHA256: c.CertSHA256,
		RequestTimeout: 2 * time.Second, UploadTimeout: c.UploadTimeout, FlashTimeout: flash,
		RebootTimeout: reboot, DownGrace: reboot / 4, PollInterval: 5 * time.Millisecond,
		RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Logger: w.agent.Log,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.agent.Device = dev
}

// A protected recorder that stops answering after its image was sent gets
// a safety code and advice, not a generic timeout, in the outcome, the
// journal and the report; another model keeps the generic code.
func TestProtectedRecorderThatStopsAnsweringGetsASafetyCode(t *testing.T) {
	tests := []struct {
		name   string
		model  string
		rels   []lab.Release
		keys   int
		pinned bool // pin the first release's digest (the operator's mistake)
		faults nvrsim.Faults
		safety bool
	}{
		// The residual risk: one signer and a pinned digest, both of the
		// standard image. The recorder is damaged while it flashes.
		{"damaged while flashing a wrongly pinned standard image", protected, []lab.Release{trap}, 1, true, nvrsim.Faults{}, true},
		{"never back from the reboot after custom 4.1.25", protected, []lab.Release{custom4125}, 2, false, nvrsim.Faults{NeverReturnFromReboot: true}, true},
		{"another model never back from the reboot keeps the generic code", "DS-7608NI-K2",
			[]lab.Release{{ID: "std", Models: []string{"DS-7608NI-K2"}, Version: "4.2.0", Variant: "standard"}}, 2, false, nvrsim.Faults{NeverReturnFromReboot: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &reportSink{}
			srv := httptest.NewServer(sink)
			t.Cleanup(srv.Close)
			w := newWorld(t, lab.Options{Keys: tt.keys, Releases: tt.rels, Device: nvrsim.Config{Model: tt.model, FlashDuration: 20 * time.Millisecond, RebootDelay: 20 * time.Millisecond},
				ExtraYAML: "report:\n  url: " + srv.URL + "\n"})
			if tt.pinned {
				w.pin(t, w.lab.Manifest().Releases[0].Image.SHA256)
			}
			w.shortDevice(t, time.Second, time.Second)
			w.lab.Sim.SetFaults(tt.faults)
			out := w.cycle(t, agent.ModeUpdateNow)
			if out.Result != agent.ResultFailed {
				t.Fatalf("result %s %v (%s), want failed", out.Result, out.Codes, out.Message)
			}
			st := w.state()
			if st.Uploads != 1 {
				t.Fatalf("the simulator saw %d uploads, want 1: %+v", st.Uploads, st)
			}
			has := len(out.Codes) > 0 && out.Codes[0] == agent.CodeProtectedUnresponsive
			if has != tt.safety {
				t.Fatalf("codes %v: safety code first = %v, want %v", out.Codes, has, tt.safety)
			}
			if !tt.safety {
				return
			}
			for _, want := range []string{"do not power-cycle", "contact the vendor's support", "do not try other images"} {
				if !strings.Contains(out.Message, want) {
					t.Errorf("the message lacks %q: %s", want, out.Message)
				}
			}
			js := w.agent.Journal.State()
			var jcodes []string
			switch {
			case js.Current != nil:
				jcodes = js.Current.Codes
			case js.LastResult != nil:
				jcodes = js.LastResult.Codes
			}
			if !slices.Contains(jcodes, agent.CodeProtectedUnresponsive) {
				t.Errorf("the journal's codes %v lack %s", jcodes, agent.CodeProtectedUnresponsive)
			}
			w.agent.FlushReports(context.Background())
			sink.mu.Lock()
			defer sink.mu.Unlock()
			var reported bool
			for _, r := range sink.reports {
				if slices.Contains(r.Codes, agent.CodeProtectedUnresponsive) && strings.Contains(r.Message, "contact the vendor's support") {
					reported = true
				}
			}
			if !reported {
				t.Errorf("no report carries %s with its advice: %+v", agent.CodeProtectedUnresponsive, sink.reports)
			}
			if js.Current == nil {
				return // the attempt ended (flash timeout): nothing to settle
			}
			// The next cycle settles the update: it asks the recorder, which
			// still does not answer, says so again and sends nothing.
			out = w.cycle(t, agent.ModeUpdateNow)
			if len(out.Codes) == 0 || out.Codes[0] != agent.CodeProtectedUnresponsive {
				t.Errorf("settling cycle: %s %v, want %s first", out.Result, out.Codes, agent.CodeProtectedUnresponsive)
			}
			if st := w.state(); st.Uploads != 1 {
				t.Errorf("the settling cycle uploaded again: %d uploads", st.Uploads)
			}
		})
	}
}

// An agent that stopped while a protected recorder was flashing, restarted
// to find the recorder silent, reports the safety code only when the
// journal says the recorder had started writing the image.
func TestRestartAfterAFlashFindsTheProtectedRecorderSilent(t *testing.T) {
	for _, flashing := range []bool{true, false} {
		t.Run(fmt.Sprintf("journal says flashing=%v", flashing), func(t *testing.T) {
			w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}, Device: nvrsim.Config{FlashDuration: 20 * time.Millisecond}})
			w.shortDevice(t, 5*time.Second, 500*time.Millisecond)
			// Stop as a crash would once the flash finished, then make the
			// journal read as if the crash came during the install.
			agent.SetBeforeStep(w.agent, func(step journal.Step) error {
				if step == journal.StepReboot {
					return errors.New("crash")
				}
				return nil
			})
			if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultStopped {
				t.Fatalf("first cycle %s %v, want stopped before the reboot", out.Result, out.Codes)
			}
			if cur := w.agent.Journal.State().Current; cur == nil || !cur.Flashing {
				t.Fatalf("the journal does not record that the device flashed: %+v", cur)
			}
			if err := w.agent.Journal.Update(func(s *journal.State) error {
				s.Current.Step, s.Current.Flashing = journal.StepInstall, flashing
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			_ = w.lab.Sim.Close() // the recorder no longer answers
			w.reopen(t)
			w.shortDevice(t, 5*time.Second, 500*time.Millisecond)
			out := w.cycle(t, agent.ModeUpdateNow)
			has := len(out.Codes) > 0 && out.Codes[0] == agent.CodeProtectedUnresponsive
			if out.Result != agent.ResultFailed || has != flashing {
				t.Fatalf("after the restart: %s %v, want failed with the safety code first = %v", out.Result, out.Codes, flashing)
			}
		})
	}
}
