package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/backend"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/verify"
)

const lookAlike = "iDS-9632NXI-I8/S"

// siteWorld is a lab site with a gateway built from its config.
type siteWorld struct {
	lab  *lab.Lab
	site *agent.Site
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSite(t *testing.T, opts lab.Options) *siteWorld {
	t.Helper()
	opts.Dir = t.TempDir()
	l, err := lab.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	w := &siteWorld{lab: l, logs: &syncBuffer{}}
	w.reopen(t)
	return w
}

// reopen builds a fresh gateway from the config, as a restarted process would.
func (w *siteWorld) reopen(t *testing.T) {
	t.Helper()
	if w.site != nil {
		_ = w.site.Close()
	}
	cfg, err := w.lab.Config()
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetFormatter(&logrus.JSONFormatter{})
	log.Out = w.logs
	if testing.Verbose() {
		log.Out = io.MultiWriter(w.logs, os.Stderr)
	}
	s, err := agent.NewSite(cfg, agent.Options{Backend: backend.New, Version: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	w.site = s
	t.Cleanup(func() { _ = s.Close() })
}

func (w *siteWorld) cycle(t *testing.T, mode agent.Mode) map[string]agent.DeviceOutcome {
	t.Helper()
	outs := w.site.Cycle(context.Background(), mode, nil)
	m := map[string]agent.DeviceOutcome{}
	for _, o := range outs {
		t.Logf("%s: %s: %s %v", o.Device, o.Result, o.Message, o.Codes)
		m[o.Device] = o
	}
	return m
}

func TestAMixedSiteEndsWithEachRecorderInItsDocumentedState(t *testing.T) {
	never := lab.SiteDevice{Name: "gone", Device: nvrsim.Config{Model: protected, Firmware: "4.1.20"},
		ISAPI: map[string]string{"reboot_timeout": "300ms", "down_grace": "100ms"}}
	w := newSite(t, lab.Options{
		Releases: []lab.Release{
			{ID: "custom-4.1.25", Models: []string{protected}, Version: "4.1.25", Variant: "custom"},
			{ID: "standard-4.1.30", Models: []string{lookAlike}, Version: "4.1.30", Variant: "standard"},
			{ID: "standard-4.1.30-16s", Models: []string{protected}, Version: "4.1.30", Variant: "standard"},
		},
		Site: []lab.SiteDevice{
			{Name: "hall", Device: nvrsim.Config{Model: protected, Firmware: "4.1.20"}},
			{Name: "yard", Device: nvrsim.Config{Model: lookAlike, Firmware: "4.1.20", Variant: "standard"}},
			{Name: "office", Device: nvrsim.Config{Model: protected, Firmware: "4.1.20"}, Password: "wrong-password-1"},
			never,
		},
		ExtraYAML: "install:\n  max_parallel: 2\n",
	})
	w.lab.Site.Recorder("gone").SetFaults(nvrsim.Faults{NeverReturnFromReboot: true})

	outs := w.cycle(t, agent.ModeUpdateNow)

	// hall: the 16S gets the custom 4.1.25 and never the standard image.
	hall := outs["hall"]
	if hall.Result != agent.ResultInstalled || !sameVersion(w.lab.Site.Recorder("hall").State().Firmware, "4.1.25") {
		t.Errorf("hall: %s (%s), want installed 4.1.25", hall.Result, hall.Message)
	}
	for _, c := range hall.Candidates {
		if c.Release.ID == "standard-4.1.30-16s" && (c.Decision.Allowed || !c.Decision.Has(verify.CodeStandardFirmwareForbidden)) {
			t.Errorf("hall: the standard image was not refused: %+v", c.Decision)
		}
	}
	// yard: the look-alike /S gets its own standard release, and is never
	// offered the custom image.
	yard := outs["yard"]
	if yard.Result != agent.ResultInstalled || !sameVersion(w.lab.Site.Recorder("yard").State().Firmware, "4.1.30") {
		t.Errorf("yard: %s (%s), want installed 4.1.30", yard.Result, yard.Message)
	}
	for _, c := range yard.Candidates {
		if c.Release.Variant == "custom" {
			t.Errorf("yard (%s) was offered the custom image %s", lookAlike, c.Release.ID)
		}
	}
	// office: wrong credentials fail once, are remembered and never retried.
	office := outs["office"]
	if office.Result != agent.ResultFailed || !slicesContain(office.Codes, "badCredentials") {
		t.Errorf("office: %s %v, want failed with badCredentials", office.Result, office.Codes)
	}
	// gone: flashed, never back: the update stays in its journal to be
	// settled, counted as a failed install.
	gone := outs["gone"]
	if gone.Result != agent.ResultFailed || gone.Step != "confirm" {
		t.Errorf("gone: %s at %q (%s), want failed at confirm", gone.Result, gone.Step, gone.Message)
	}
	for _, name := range []string{"hall", "yard", "office", "gone"} {
		st := w.lab.Site.Recorder(name).State()
		if st.Bricked {
			t.Errorf("%s bricked: %s", name, st.BrickReason)
		}
	}
	if st := w.lab.Site.Recorder("gone").State(); st.Installs != 1 {
		t.Errorf("gone: %d installs, want 1", st.Installs)
	}
	// One GET per image for the whole site: two 16S got one download.
	if n := w.lab.ImageRequests.Load(); n != 2 {
		t.Errorf("%d image GETs for two releases, want 2 (one per release per site)", n)
	}
	if n := w.lab.ManifestRequests.Load(); n != 1 {
		t.Errorf("%d manifest GETs for one site cycle, want 1", n)
	}

	// The daemon's next cycle never sends the refused credentials again.
	before := w.lab.Site.Recorder("office").State()
	outs = w.cycle(t, agent.ModeUpdate)
	after := w.lab.Site.Recorder("office").State()
	if after.TotalFailedLogins != before.TotalFailedLogins || after.Locked {
		t.Errorf("office: failed logins %d -> %d, locked %v: refused credentials were retried", before.TotalFailedLogins, after.TotalFailedLogins, after.Locked)
	}
	if o := outs["office"]; !slicesContain(o.Codes, agent.CodeCredentialsRefused) {
		t.Errorf("office on the daemon's cycle: %s %v", o.Result, o.Codes)
	}
	if o := outs["hall"]; o.Result != agent.ResultNothing {
		t.Errorf("hall on the next cycle: %s (%s), want nothing to do", o.Result, o.Message)
	}
	if st := w.lab.Site.Recorder("hall").State(); st.Installs != 1 {
		t.Errorf("hall flashed %d times", st.Installs)
	}
	// Per-device state folders.
	for _, name := range []string{"hall", "yard", "gone"} {
		if _, err := os.Stat(filepath.Join(w.lab.StateDir, "devices", name, "journal.json")); err != nil {
			t.Errorf("%s has no journal of its own: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(w.lab.StateDir, "devices", "office", "credentials_refused.json")); err != nil {
		t.Errorf("office's refusal is not remembered in its own folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.lab.StateDir, "devices", "hall", "credentials_refused.json")); err == nil {
		t.Error("hall remembers office's refused credentials")
	}
	// The cache keeps only what gone's update in progress needs.
	imgs, _ := filepath.Glob(filepath.Join(w.lab.StateDir, "images", "*"))
	if len(imgs) != 1 {
		t.Errorf("images left in the cache: %v, want gone's one", imgs)
	}

	w.checkLogLines(t)
}

// checkLogLines: every line names its device, and no recorder's address or
// password appears on another recorder's lines.
func (w *siteWorld) checkLogLines(t *testing.T) {
	t.Helper()
	cfg, err := w.lab.Config()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]string{}
	for _, r := range cfg.Recorders() {
		u, _ := url.Parse(r.Config.Device.ISAPI.URL)
		secrets[r.Name] = []string{u.Host, r.Config.Device.ISAPI.Password}
	}
	sc := bufio.NewScanner(strings.NewReader(w.logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		dev, _ := line["device"].(string)
		if dev == "" {
			t.Errorf("log line without device: %s", sc.Text())
			continue
		}
		for name, ss := range secrets {
			if name == dev {
				continue
			}
			for _, s := range ss {
				if strings.Contains(sc.Text(), s) {
					t.Errorf("a line of %s carries %s's address or password: %s", dev, name, sc.Text())
				}
			}
		}
	}
	if n == 0 {
		t.Error("no log lines")
	}
}

func TestASiteStopsAReleaseAfterTooManyFailedInstalls(t *testing.T) {
	var devs []lab.SiteDevice
	for range 3 {
		devs = append(devs, lab.SiteDevice{Device: nvrsim.Config{Model: protected, Firmware: "4.1.20"}})
	}
	w := newSite(t, lab.Options{Releases: []lab.Release{custom4125}, Site: devs,
		ExtraYAML: "install:\n  max_parallel: 1\n  stop_after_failures: 2\n"})
	for _, r := range w.lab.Site.Recorders {
		r.SetFaults(nvrsim.Faults{RejectUpload: "badFlash"})
	}
	outs := w.cycle(t, agent.ModeUpdateNow)
	failed, held := 0, 0
	for _, o := range outs {
		switch o.Result {
		case agent.ResultFailed:
			failed++
		case agent.ResultHeld:
			held++
			if !slicesContain(o.Codes, agent.CodeSiteStopped) || !strings.Contains(o.Message, "stop_after_failures") {
				t.Errorf("%s held with %v: %s", o.Device, o.Codes, o.Message)
			}
		}
	}
	if failed != 2 || held != 1 {
		t.Fatalf("%d failed, %d held; want 2 failed and the third held", failed, held)
	}
	uploads := 0
	for _, r := range w.lab.Site.Recorders {
		uploads += r.State().Uploads
	}
	if uploads != 2 {
		t.Errorf("%d uploads, want 2: the third recorder must not be tried", uploads)
	}
	// A held recorder waits with its update; held cycles are no crash loop.
	for range 5 {
		outs = w.cycle(t, agent.ModeUpdateNow)
	}
	for _, o := range outs {
		if slicesContain(o.Codes, "crash_loop") {
			t.Errorf("%s: held cycles ended in a crash loop: %s", o.Device, o.Message)
		}
	}
}

func TestASiteOfOneKeepsTheSingleDeviceLayout(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	cfg, err := w.lab.Config()
	if err != nil {
		t.Fatal(err)
	}
	_ = w.agent.Close()
	s, err := agent.NewSite(cfg, agent.Options{Backend: backend.New, Version: "test", Log: logrus.New()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Agents) != 1 || s.Agents[0].DeviceName() != config.DefaultDeviceName || s.Agents[0].Config.StateDir != w.lab.StateDir {
		t.Fatalf("a site of one: %d agents, %s in %s", len(s.Agents), s.Agents[0].DeviceName(), s.Agents[0].Config.StateDir)
	}
	outs := s.Cycle(context.Background(), agent.ModeUpdateNow, nil)
	if outs[0].Result != agent.ResultInstalled {
		t.Fatalf("%s: %s", outs[0].Result, outs[0].Message)
	}
	if _, err := os.Stat(filepath.Join(w.lab.StateDir, "journal.json")); err != nil {
		t.Errorf("the journal is not in state_dir: %v", err)
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestTwoEntriesReachingOneRecorderAreNotUpdatedTwice(t *testing.T) {
	w := newSite(t, lab.Options{Releases: []lab.Release{custom4125},
		Site: []lab.SiteDevice{{Name: "front", Device: nvrsim.Config{Model: protected, Firmware: "4.1.20"}}}})
	raw, err := os.ReadFile(w.lab.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "  - name: front\n")
	end := strings.Index(text[start:], "manifest:") + start
	entry := text[start:end]
	u, _ := url.Parse(w.lab.Sim.URL())
	alias := strings.Replace(strings.Replace(entry, "name: front", "name: alias", 1), "127.0.0.1:", "localhost:", 1)
	if alias == entry || !strings.Contains(alias, "localhost:"+u.Port()) {
		t.Fatalf("could not build the alias entry from:\n%s", entry)
	}
	if err := os.WriteFile(w.lab.ConfigPath, []byte(text[:end]+alias+text[end:]), 0o600); err != nil {
		t.Fatal(err)
	}
	w.reopen(t)
	outs := w.cycle(t, agent.ModeUpdateNow)
	installed, dup := 0, 0
	for _, o := range outs {
		if o.Result == agent.ResultInstalled {
			installed++
		}
		if slicesContain(o.Codes, agent.CodeDuplicateRecorder) {
			dup++
		}
	}
	if installed != 1 || dup != 1 || w.lab.Sim.State().Installs != 1 {
		t.Fatalf("%d installed, %d refused as duplicates, %d flashes; want one of each and one flash", installed, dup, w.lab.Sim.State().Installs)
	}
}

func TestTheSiteDaemonUpdatesEveryRecorderAndStopsOnCancel(t *testing.T) {
	var devs []lab.SiteDevice
	for range 3 {
		devs = append(devs, lab.SiteDevice{Device: nvrsim.Config{Model: protected, Firmware: "4.1.20"}})
	}
	w := newSite(t, lab.Options{Releases: []lab.Release{custom4125}, Site: devs, ExtraYAML: "install:\n  max_parallel: 2\n"})
	ticks := make(chan time.Time)
	w.site.Agents[0].After = func(time.Duration) <-chan time.Time { return ticks }
	ready := make(chan struct{})
	w.site.ReadyHook = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.site.Run(ctx) }()
	<-ready
	wait := waitCtx(t)
	for _, r := range w.lab.Site.Recorders {
		if err := r.Wait(wait, func(s nvrsim.State) bool {
			return s.Installs == 1 && !s.Rebooting && strings.Contains(s.Firmware, "4.1.25")
		}); err != nil {
			t.Fatalf("the daemon did not update %s: %v", r.URL(), err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	for _, a := range w.site.Agents {
		if st := a.Status(); st.LastCycle == nil {
			t.Errorf("%s has no last cycle in its status", a.DeviceName())
		}
	}
}

func TestASiteRefusesToStrandAOneRecorderUpdateInProgress(t *testing.T) {
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	agent.SetBeforeStep(w.agent, func(s journal.Step) error {
		if s == journal.StepWaitWindow {
			return errCrash
		}
		return nil
	})
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultStopped {
		t.Fatalf("%s, want stopped by the crash seam", out.Result)
	}
	_ = w.agent.Close()
	raw, err := os.ReadFile(w.lab.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	site := strings.Replace(string(raw), "device:\n  backend: isapi\n  isapi:\n", "devices:\n  - name: hall\n    backend: isapi\n    isapi:\n", 1)
	site = strings.ReplaceAll(site, "\n    url:", "\n      url:")
	for _, k := range []string{"username", "password", "request_timeout", "upload_timeout", "flash_timeout", "reboot_timeout", "down_grace", "poll_interval"} {
		site = strings.Replace(site, "\n    "+k+":", "\n      "+k+":", 1)
	}
	if err := os.WriteFile(w.lab.ConfigPath, []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := w.lab.Config()
	if err != nil {
		t.Fatalf("%v\n%s", err, site)
	}
	_, err = agent.NewSite(cfg, agent.Options{Backend: backend.New, Version: "test", Log: logrus.New()})
	if err == nil || !strings.Contains(err.Error(), "update in progress") || !strings.Contains(err.Error(), custom4125.ID) {
		t.Fatalf("NewSite = %v, want a refusal naming the update in progress", err)
	}
}

// TestTheEntryWhoseJournalHoldsTheUpdateWinsTheRecorder: two entries reach
// one recorder; the second one started an update (the image is on the
// recorder, the reboot did not happen) before the first entry was added.
// After the restart the second entry wins, settles its update, and the
// first one is refused before touching the recorder; once nothing is in
// progress the entry earlier in the file wins, across a restart too. The
// recorder is flashed once.
func TestTheEntryWhoseJournalHoldsTheUpdateWinsTheRecorder(t *testing.T) {
	w := newSite(t, lab.Options{Releases: []lab.Release{custom4125},
		Site: []lab.SiteDevice{{Name: "front", Device: nvrsim.Config{Model: protected, Firmware: "4.1.20"}}}})
	raw, err := os.ReadFile(w.lab.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "  - name: front\n")
	end := strings.Index(text[start:], "manifest:") + start
	entry := text[start:end]
	u, _ := url.Parse(w.lab.Sim.URL())
	alias := strings.Replace(strings.Replace(entry, "name: front", "name: alias", 1), "127.0.0.1:", "localhost:", 1)
	if alias == entry || !strings.Contains(alias, "localhost:"+u.Port()) {
		t.Fatalf("could not build the alias entry from:\n%s", entry)
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(w.lab.ConfigPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		w.reopen(t)
	}

	// A site of alias alone: crash after the flash, before the reboot.
	write(text[:start] + alias + text[end:])
	agent.SetBeforeStep(w.site.Agents[0], func(step journal.Step) error {
		if step == journal.StepReboot {
			return errors.New("crash before the reboot")
		}
		return nil
	})
	if o := w.cycle(t, agent.ModeUpdateNow)["alias"]; o.Result != agent.ResultStopped {
		t.Fatalf("alias: %s (%s), want stopped by the crash", o.Result, o.Message)
	}
	if n := w.lab.Sim.State().Installs; n != 1 {
		t.Fatalf("%d flashes before the restart, want 1", n)
	}

	// front is added before alias; the gateway restarts.
	write(text[:end] + alias + text[end:])
	outs := w.cycle(t, agent.ModeUpdate)
	if o := outs["alias"]; o.Result != agent.ResultInstalled {
		t.Errorf("alias (its journal holds the update): %s (%s), want installed", o.Result, o.Message)
	}
	if o := outs["front"]; o.Result != agent.ResultFailed || !slicesContain(o.Codes, agent.CodeDuplicateRecorder) {
		t.Errorf("front: %s %v (%s), want failed with %s", o.Result, o.Codes, o.Message, agent.CodeDuplicateRecorder)
	}

	// Nothing in progress any more: the entry earlier in the file wins,
	// in this process and after a restart.
	for i := range 3 {
		if i == 2 {
			w.reopen(t)
		}
		outs := w.cycle(t, agent.ModeUpdateNow)
		if o := outs["alias"]; !slicesContain(o.Codes, agent.CodeDuplicateRecorder) {
			t.Errorf("cycle %d: alias: %s %v (%s), want %s", i, o.Result, o.Codes, o.Message, agent.CodeDuplicateRecorder)
		}
		if o := outs["front"]; o.Result != agent.ResultNothing {
			t.Errorf("cycle %d: front: %s %v (%s), want nothing to do (up to date)", i, o.Result, o.Codes, o.Message)
		}
	}
	if st := w.lab.Sim.State(); st.Installs != 1 || !sameVersion(st.Firmware, "4.1.25") {
		t.Fatalf("the recorder was flashed %d times and runs %s; want once, 4.1.25", st.Installs, st.Firmware)
	}
}

// TestASiteRemembersFailedInstallsAcrossARestart: the failures that made
// the site stop a release are kept in state_dir: a restarted gateway still
// holds the release, and a manifest with a higher serial forgets them.
func TestASiteRemembersFailedInstallsAcrossARestart(t *testing.T) {
	var devs []lab.SiteDevice
	for range 4 {
		devs = append(devs, lab.SiteDevice{Device: nvrsim.Config{Model: protected, Firmware: "4.1.20"}})
	}
	w := newSite(t, lab.Options{Releases: []lab.Release{custom4125}, Site: devs,
		ExtraYAML: "install:\n  max_parallel: 1\n  stop_after_failures: 2\n"})
	for _, r := range w.lab.Site.Recorders {
		r.SetFaults(nvrsim.Faults{RejectUpload: "badFlash"})
	}
	uploads := func() int {
		n := 0
		for _, r := range w.lab.Site.Recorders {
			n += r.State().Uploads
		}
		return n
	}
	count := func(outs map[string]agent.DeviceOutcome, r agent.Result) int {
		n := 0
		for _, o := range outs {
			if o.Result == r {
				n++
			}
		}
		return n
	}
	if outs := w.cycle(t, agent.ModeUpdateNow); count(outs, agent.ResultFailed) != 2 || count(outs, agent.ResultHeld) != 2 {
		t.Fatalf("first cycle: want 2 failed and 2 held")
	}
	if _, err := os.Stat(filepath.Join(w.lab.StateDir, "site-failures.json")); err != nil {
		t.Fatalf("the failures are not kept in state_dir: %v", err)
	}

	// The gateway restarts: the release stays stopped on the two recorders
	// not tried (the two that failed quarantined it).
	w.reopen(t)
	for range 2 {
		if outs := w.cycle(t, agent.ModeUpdateNow); count(outs, agent.ResultHeld) != 2 {
			t.Fatalf("after the restart: %d held, want the 2 not tried", count(outs, agent.ResultHeld))
		}
	}
	if n := uploads(); n != 2 {
		t.Fatalf("%d uploads after the restart, want still 2", n)
	}

	// A newer manifest (the integrator fixed the cause) forgets them.
	for _, r := range w.lab.Site.Recorders {
		r.SetFaults(nvrsim.Faults{})
	}
	m := w.lab.Manifest()
	m.Serial++
	m.Issued, m.Expires = time.Time{}, time.Time{}
	if err := w.lab.Publish(m); err != nil {
		t.Fatal(err)
	}
	w.reopen(t)
	outs := w.cycle(t, agent.ModeUpdateNow)
	if count(outs, agent.ResultHeld) != 0 || count(outs, agent.ResultInstalled) < 2 {
		t.Fatalf("after a higher serial: %d held, %d installed; want none held", count(outs, agent.ResultHeld), count(outs, agent.ResultInstalled))
	}
}
