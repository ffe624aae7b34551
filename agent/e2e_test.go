package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/backend"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/fwagent/fwagent/verify"
)

const protected = "iDS-9632NXI-I8/16S"

// world is a lab with an agent built from its config.
type world struct {
	lab   *lab.Lab
	agent *agent.Agent
}

// custom4125 is the one release the protected model may take.
var custom4125 = lab.Release{ID: "custom-4.1.25", Version: "4.1.25", Variant: "custom", TermsURL: "https://vendor.example/terms"}

func newWorld(t *testing.T, opts lab.Options) *world {
	t.Helper()
	opts.Dir = t.TempDir()
	if opts.Device.Model == "" {
		opts.Device.Model = protected
	}
	if opts.Device.Firmware == "" {
		opts.Device.Firmware = "V4.1.20"
	}
	l, err := lab.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	w := &world{lab: l}
	w.reopen(t)
	return w
}

// reopen builds a fresh agent from the config, as a restarted process would.
func (w *world) reopen(t *testing.T) {
	t.Helper()
	if w.agent != nil {
		_ = w.agent.Close()
	}
	cfg, err := w.lab.Config()
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.Out = io.Discard
	if testing.Verbose() {
		log.Out = os.Stderr
	}
	a, err := agent.New(cfg, agent.Options{Backend: backend.New, Version: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	w.agent = a
	t.Cleanup(func() { _ = a.Close() })
}

func (w *world) cycle(t *testing.T, mode agent.Mode) agent.Outcome {
	t.Helper()
	out := w.agent.Cycle(context.Background(), mode)
	t.Logf("cycle: %s: %s %v", out.Result, out.Message, out.Codes)
	return out
}

func (w *world) state() nvrsim.State { return w.lab.Sim.State() }

func TestCleanUpdateIsInstalledAndConfirmed(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{
		custom4125,
		{ID: "standard-4.1.30", Version: "4.1.30", Variant: "standard"},
		{ID: "other-model", Models: []string{"DS-7608NI-K2"}, Version: "4.2.0", Variant: "standard"},
	}})
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("result %s (%s), want installed", out.Result, out.Message)
	}
	st := w.state()
	if st.Bricked || st.Installs != 1 || !sameVersion(st.Firmware, "4.1.25") {
		t.Fatalf("simulator state %+v: want one install of 4.1.25 and no brick", st)
	}
	var refusedStandard bool
	for _, c := range out.Candidates {
		if c.Release.ID == "standard-4.1.30" {
			refusedStandard = !c.Decision.Allowed && c.Decision.Has(verify.CodeStandardFirmwareForbidden)
		}
		if c.Release.ID == "other-model" {
			t.Error("a release for another model was considered at all")
		}
	}
	if !refusedStandard {
		t.Error("the standard release was not refused with standard_firmware_forbidden")
	}
	js := w.agent.Journal.State()
	if js.Current != nil || js.LastResult == nil || js.LastResult.Outcome != journal.OutcomeSuccess {
		t.Fatalf("journal after install: current %+v, last %+v", js.Current, js.LastResult)
	}
	if _, err := os.Stat(filepath.Join(w.lab.StateDir, "images")); err == nil {
		entries, _ := os.ReadDir(filepath.Join(w.lab.StateDir, "images"))
		for _, e := range entries {
			t.Errorf("image left behind after a confirmed install: %s", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(w.lab.StateDir, "identity.json")); err != nil {
		t.Errorf("the identity was not kept for support bundles: %v", err)
	}
	if n, err := audit.Verify(w.lab.StateDir); err != nil || n == 0 {
		t.Fatalf("audit trail: %d entries, %v", n, err)
	}

	// The next poll: the manifest is unchanged (one 304) and there is
	// nothing to do.
	before := w.lab.ManifestRequests.Load()
	out = w.cycle(t, agent.ModeUpdate)
	if out.Result != agent.ResultNothing || !out.Unchanged {
		t.Fatalf("second cycle: %s unchanged=%v, want nothing with an unchanged manifest", out.Result, out.Unchanged)
	}
	if got := w.lab.ManifestRequests.Load() - before; got != 1 || w.lab.NotModified.Load() != 1 {
		t.Fatalf("second cycle made %d manifest requests (%d answered 304), want exactly one 304", got, w.lab.NotModified.Load())
	}
}

func TestStandardFirmwareIsRefusedBeforeDownload(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{
		{ID: "standard-4.1.30", Version: "4.1.30", Variant: "standard"},
	}})
	for i := 0; i < 2; i++ {
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultRefused || !slices.Contains(out.Codes, string(verify.CodeStandardFirmwareForbidden)) {
			t.Fatalf("cycle %d: %s %v, want refused with standard_firmware_forbidden", i, out.Result, out.Codes)
		}
	}
	if got := w.lab.ImageBytes.Load(); got != 0 {
		t.Fatalf("%d image bytes were downloaded for a refused release", got)
	}
	if st := w.state(); st.Installs != 0 || st.Bricked || st.Uploads != 0 {
		t.Fatalf("the simulator saw the refused image: %+v", st)
	}
}

func TestNoTermsNoDownload(t *testing.T) {
	w := newWorld(t, lab.Options{NoTerms: true, Releases: []lab.Release{custom4125}})
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultRefused || !slices.Contains(out.Codes, agent.CodeTermsNotAccepted) {
		t.Fatalf("%s %v, want refused with terms_not_accepted", out.Result, out.Codes)
	}
	if w.lab.ImageBytes.Load() != 0 {
		t.Fatal("an image was downloaded before the terms were accepted")
	}
}

func TestCorruptedDownloadIsRefusedAfterDownload(t *testing.T) {
	cases := []struct {
		name string
		rel  lab.Release
		code string
	}{
		{"a digest that does not match", lab.Release{WrongDigest: true}, "digest_mismatch"},
		{"an entry checksum that does not match", lab.Release{Corrupt: testimage.BadEntryChecksum}, string(verify.CodeImageMalformed)},
		{"the vendor's zip package", lab.Release{Corrupt: testimage.Zip}, string(verify.CodeImageIsZip)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rel := tc.rel
			rel.ID, rel.Version, rel.Variant = custom4125.ID, custom4125.Version, custom4125.Variant
			w := newWorld(t, lab.Options{Releases: []lab.Release{rel}})
			out := w.cycle(t, agent.ModeUpdateNow)
			if out.Result != agent.ResultFailed || !slices.Contains(out.Codes, tc.code) {
				t.Fatalf("%s %v, want failed with %s", out.Result, out.Codes, tc.code)
			}
			if st := w.state(); st.Uploads != 0 || st.Installs != 0 {
				t.Fatalf("the simulator saw a bad image: %+v", st)
			}
			js := w.agent.Journal.State()
			if !js.Quarantined(rel.ID, 1) {
				t.Fatalf("release not quarantined after a fatal failure: %+v", js.Quarantine)
			}
			// Quarantined: the next cycle does not download it again.
			bytes := w.lab.ImageBytes.Load()
			w.cycle(t, agent.ModeUpdateNow)
			if w.lab.ImageBytes.Load() != bytes {
				t.Fatal("a quarantined release was downloaded again")
			}
		})
	}
}

func TestMaintenanceWindowIsHonoured(t *testing.T) {
	// A one-hour window that opens in 3 hours (local time, any weekday).
	w, inside := newWaitingWorld(t)
	out := w.cycle(t, agent.ModeUpdate)
	if out.Result != agent.ResultWaiting || out.NextWindow.IsZero() {
		t.Fatalf("%s, want waiting for the window", out.Result)
	}
	if st := w.state(); st.Uploads != 0 {
		t.Fatal("installed outside the maintenance window")
	}
	if js := w.agent.Journal.State(); js.Current == nil || !js.Current.Verified || js.Current.Step != journal.StepWaitWindow {
		t.Fatalf("journal: %+v, want a verified image waiting for the window", js.Current)
	}
	// Inside the window (the clock moved on), the install goes ahead
	// after the staged image is proven again.
	w.agent.Now = func() time.Time { return inside }
	out = w.cycle(t, agent.ModeUpdate)
	if out.Result != agent.ResultInstalled {
		t.Fatalf("%s (%s), want installed inside the window", out.Result, out.Message)
	}
	if got, size := w.lab.ImageBytes.Load(), w.state().LastUpload.Bytes; got > 2*size {
		t.Errorf("%d image bytes served: the verified image was downloaded again", got)
	}
}

func sameVersion(a, b string) bool {
	va, err1 := verify.ParseVersion(a)
	vb, err2 := verify.ParseVersion(b)
	return err1 == nil && err2 == nil && va.Compare(vb) == 0
}

func TestEveryLogLineOfAnAttemptCarriesItsIDs(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	var buf bytes.Buffer
	log := logrus.New()
	log.Out = &buf
	log.Formatter = &logrus.JSONFormatter{}
	cfg, err := w.lab.Config()
	if err != nil {
		t.Fatal(err)
	}
	_ = w.agent.Close()
	a, err := agent.New(cfg, agent.Options{Backend: backend.New, Version: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if out := a.Cycle(context.Background(), agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s: %s", out.Result, out.Message)
	}
	var inAttempt, fromParts int
	started := false
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msg, _ := e["msg"].(string)
		if msg == "update started" {
			started = true
		}
		if !started {
			continue
		}
		inAttempt++
		if e["attempt"] == nil || e["release"] != custom4125.ID {
			t.Errorf("a line of the attempt lacks its ids: %s", line)
		}
		if strings.Contains(msg, "downloading image") || strings.Contains(msg, "upload") {
			fromParts++
		}
	}
	if inAttempt == 0 || fromParts == 0 {
		t.Fatalf("found %d attempt lines, %d from the downloader or the device backend", inAttempt, fromParts)
	}
}
