package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/agent/support"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/redact"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// state is one step of the cycle: it does its work and returns the next
// state, or nil when the cycle is over. journal names the step persisted
// before the state runs ("" for the steps before an update exists, which are
// cheap to redo and change nothing).
type state struct {
	journal journal.Step
	run     func(c *cycle, ctx context.Context) (*state, error)
	// device marks the device steps: once started they run to their end
	// (bounded by the backend's timeouts) even when the agent is asked to
	// stop, so a stop never leaves the device half-way through a step the
	// agent could have finished.
	device bool
	// keep marks the steps before the decision (identify, fetch_manifest):
	// their failures say nothing about the release being installed, so they
	// never end or quarantine an update in progress; it waits in the
	// journal for a cycle where the device and the manifest answer again.
	keep bool
}

// cycle is the working memory of one pass through the states.
type cycle struct {
	a    *Agent
	mode Mode
	log  logrus.FieldLogger
	out  *Outcome

	id       device.Identity
	verified *manifest.Verified
	release  *manifest.Release // the chosen release
	facts    verify.ImageFacts
	onDevice bool // a device step has started: finish them before stopping
	settled  bool // settle found a finished flash after a stop and sent it to reboot
	sent     bool // image bytes reached the device in this cycle
}

// The states, in cycle order. Each doc comment names the successors.
var (
	// stateResume looks at the journal first: an update interrupted during
	// install, reboot or confirm is settled before anything else (->
	// stateSettle); everything else starts at stateIdentify.
	stateResume = &state{run: (*cycle).resume}
	// stateIdentify reads the device's identity (-> stateFetch).
	stateIdentify = &state{run: (*cycle).identify, keep: true}
	// stateFetch fetches and verifies the signed manifest (-> stateDecide).
	stateFetch = &state{run: (*cycle).fetchManifest, keep: true}
	// stateDecide chooses the release for this device and rollout (->
	// stateDownload, stateVerify, stateWaitWindow, or the end).
	stateDecide = &state{run: (*cycle).decide}
	// stateDownload downloads the image, hashing as it writes (-> stateVerify).
	stateDownload = &state{journal: journal.StepDownload, run: (*cycle).download}
	// stateVerify applies every policy rule to the downloaded image (->
	// stateWaitWindow).
	stateVerify = &state{journal: journal.StepVerify, run: (*cycle).verifyImage}
	// stateWaitWindow waits for a maintenance window (-> stateInstall, or
	// the end of the cycle until the window opens).
	stateWaitWindow = &state{journal: journal.StepWaitWindow, run: (*cycle).waitWindow}
	// stateInstall re-proves the staged image and installs it (-> stateReboot).
	stateInstall = &state{journal: journal.StepInstall, run: (*cycle).install, device: true}
	// stateReboot reboots the device (-> stateConfirm).
	stateReboot = &state{journal: journal.StepReboot, run: (*cycle).reboot, device: true}
	// stateConfirm waits for the device and checks its new version (-> end).
	stateConfirm = &state{journal: journal.StepConfirm, run: (*cycle).confirm, device: true}
)

// Cycle runs one pass of the update cycle in the given mode and returns what
// it found and did. It never panics on bad input: every error ends in the
// one failure path, which classifies it, records it and reports it.
func (a *Agent) Cycle(ctx context.Context, mode Mode) Outcome {
	c := &cycle{a: a, mode: mode, log: a.Log, out: &Outcome{}}
	s := stateResume
	if mode == ModeCheck {
		s = stateIdentify
	}
	// The daemon never repeats a login the device refused: recorders lock
	// the account after a few. An operator's explicit run tries once.
	if r := a.credentialsRefused(); r != nil && mode == ModeUpdate {
		err := credentialsError(r)
		c.out.Result, c.out.Err, c.out.Message = ResultFailed, err, err.Error()
		c.out.Codes = []string{CodeCredentialsRefused}
		c.log.Warn(c.out.Message)
		c.out.Finished = a.now()
		out := *c.out
		a.setStatus(func(st *Status) { st.LastCycle = &out })
		return out
	}
	for s != nil {
		if ctx.Err() != nil && !(s.device && c.onDevice) {
			c.fail(ctx, ctx.Err())
			break
		}
		if s.journal != "" {
			if err := c.enter(s.journal); err != nil {
				c.fail(ctx, err)
				break
			}
		}
		runCtx := ctx
		if s.device {
			c.onDevice = true
			runCtx = context.WithoutCancel(ctx)
		}
		next, err := s.run(c, runCtx)
		if err != nil {
			if s.keep {
				err = keepUpdate(err)
			}
			c.fail(ctx, err)
			break
		}
		s = next
	}
	a.ids.set("", "")
	c.out.Finished = a.now()
	out := *c.out
	a.setStatus(func(st *Status) { st.LastCycle = &out })
	return out
}

// enter persists step as the current update's step before it runs and ends
// crash loops: a step entered too often fails the update.
func (c *cycle) enter(step journal.Step) error {
	n, err := c.a.Journal.EnterStep(step)
	if err != nil {
		return fatal(CodeInternal, fmt.Errorf("record step %s in the journal: %w", step, err))
	}
	if n > c.a.maxStepEntries() {
		return fatal(CodeCrashLoop, fmt.Errorf("step %s was entered %d times in this attempt: giving up instead of looping; see the agent log for the earlier failures", step, n))
	}
	c.report(step, "", nil, "")
	if c.a.BeforeStep != nil {
		if err := c.a.BeforeStep(step); err != nil {
			return &halted{step: step, err: err}
		}
	}
	return nil
}

func (c *cycle) current() *journal.Update {
	return c.a.Journal.State().Current
}

// resume settles an update that was interrupted inside the device steps.
func (c *cycle) resume(ctx context.Context) (*state, error) {
	u := c.current()
	if u == nil {
		return stateIdentify, nil
	}
	c.withAttempt(u)
	switch u.Step {
	case journal.StepInstall, journal.StepReboot, journal.StepConfirm:
		return c.settle(ctx, u)
	}
	return stateIdentify, nil
}

// withAttempt makes every log line of the cycle carry the update's ids.
func (c *cycle) withAttempt(u *journal.Update) {
	c.log = c.a.Log.WithFields(logrus.Fields{"release": u.ReleaseID, "attempt": u.AttemptID})
	c.a.ids.set(u.ReleaseID, u.AttemptID)
	c.out.Release = u.ReleaseID
	c.out.Attempt = u.AttemptID
}

// identify reads the device identity.
func (c *cycle) identify(ctx context.Context) (*state, error) {
	id, err := c.a.Device.Identify(ctx)
	if err != nil {
		return nil, err
	}
	if c.mode != ModeCheck {
		c.a.noteCredentials(nil, true)
	}
	c.id = id
	c.out.Identity = &id
	c.a.setStatus(func(s *Status) { s.Identity = &id })
	c.log.WithFields(logrus.Fields{"model": id.Model, "serial": id.Serial, "firmware": id.FirmwareVersion}).Info("device identified")
	if c.mode != ModeCheck {
		c.a.keepIdentity(id)
	}
	return stateFetch, nil
}

// identityFile is where the last identity is kept for fwagent
// support-bundle, which runs without talking to the device.
const identityFile = "identity.json"

// keepIdentity writes id to the state directory when it changed.
func (a *Agent) keepIdentity(id device.Identity) {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return
	}
	path := filepath.Join(a.Config.StateDir, identityFile)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return
	}
	if err := renameio.WriteFile(path, b, 0o600); err != nil {
		a.Log.WithError(err).Warn("could not keep the device identity for support bundles")
	}
}

// fetchManifest fetches the manifest conditionally and verifies it. An
// unchanged manifest costs one request and no signature check.
func (c *cycle) fetchManifest(ctx context.Context) (*state, error) {
	a := c.a
	st := a.Journal.State()
	cond := fetch.Conditional{ETag: st.ManifestETag, LastModified: st.ManifestLastModified}
	if c.mode == ModeCheck {
		cond = fetch.Conditional{}
	}
	urls := a.Config.Manifest.URLs
	if a.OfflineDir != "" {
		urls = []string{"file://" + filepath.Join(a.OfflineDir, offlineManifestName)}
	}
	res, err := a.Fetcher.Fetch(ctx, urls, cond)
	if err != nil {
		return nil, err
	}
	if res.NotModified {
		v, err := c.cachedManifest()
		if err != nil {
			return nil, err
		}
		c.verified = v
		c.out.Unchanged = true
		c.out.Serial = v.Manifest.Serial
		c.log.WithField("serial", v.Manifest.Serial).Debug("manifest unchanged")
		return stateDecide, nil
	}
	v, err := manifest.Verify(res.Body, a.Trust, c.verifyOptions(st))
	if err != nil {
		return nil, err
	}
	c.verified = v
	c.out.Serial = v.Manifest.Serial
	if c.mode == ModeCheck {
		return stateDecide, nil
	}
	if err := renameio.WriteFile(a.envelopePath(), res.Body, 0o600); err != nil {
		return nil, transient(CodeInternal, fmt.Errorf("keep the accepted manifest: %w", err))
	}
	newSerial := v.Manifest.Serial > st.LastSerial || st.LastDigest == ""
	if err := a.Journal.Update(func(s *journal.State) error {
		s.LastSerial = v.Manifest.Serial
		s.LastDigest = v.Digest
		s.ManifestETag = res.ETag
		s.ManifestLastModified = res.LastModified
		for id, q := range s.Quarantine {
			if v.Manifest.Serial > q.Serial {
				delete(s.Quarantine, id)
				delete(s.Attempts, id)
			}
		}
		return nil
	}); err != nil {
		return nil, transient(CodeInternal, err)
	}
	a.mu.Lock()
	a.cached = v
	a.mu.Unlock()
	if newSerial {
		c.log.WithFields(logrus.Fields{"serial": v.Manifest.Serial, "signers": len(v.Signers), "url": redact.URL(res.URL)}).Info("manifest accepted")
		c.audit(audit.Entry{Event: audit.EventManifestAccepted, Message: fmt.Sprintf("serial %d from %s", v.Manifest.Serial, redact.URL(res.URL))})
	}
	return stateDecide, nil
}

func (c *cycle) verifyOptions(st journal.State) manifest.VerifyOptions {
	cfg := c.a.Config.Manifest
	return manifest.VerifyOptions{
		Now:          c.a.now(),
		MaxSkew:      cfg.MaxSkew,
		LastSerial:   st.LastSerial,
		LastDigest:   st.LastDigest,
		MaxImageSize: cfg.MaxImageSize,
	}
}

// cachedManifest returns the manifest a 304 refers to: the one verified
// earlier in this process, or the accepted envelope kept on disk, verified
// once again after a restart. Either way it must not have expired since.
func (c *cycle) cachedManifest() (*manifest.Verified, error) {
	a := c.a
	a.mu.Lock()
	v := a.cached
	a.mu.Unlock()
	st := a.Journal.State()
	if v == nil {
		body, err := os.ReadFile(a.envelopePath())
		if err != nil {
			// Without the accepted envelope the 304 is useless: forget the
			// validators so the next fetch is unconditional.
			_ = a.Journal.Update(func(s *journal.State) error {
				s.ManifestETag, s.ManifestLastModified = "", ""
				return nil
			})
			return nil, transient(CodeInternal, fmt.Errorf("the server says the manifest is unchanged but the accepted copy is missing (%v): fetching it again on the next cycle", err))
		}
		v, err = manifest.Verify(body, a.Trust, c.verifyOptions(st))
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.cached = v
		a.mu.Unlock()
	}
	if now := a.now(); !now.Before(v.Manifest.Expires) {
		return nil, &manifest.Error{Code: manifest.CodeExpired, Msg: fmt.Sprintf("manifest expired at %s (device clock %s) and the server still serves it unchanged: publish a fresh manifest", v.Manifest.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	return v, nil
}

// decide chooses the release for this device: among the releases naming its
// model, those the policy allows, the rollout admits and no quarantine holds;
// the newest wins. Refusals are logged, audited and reported once per
// manifest serial.
func (c *cycle) decide(ctx context.Context) (*state, error) {
	a := c.a
	m := c.verified.Manifest
	st := a.Journal.State()
	now := a.now()
	var chosen *Candidate
	var refused []*Candidate
	upToDate := false
	for _, r := range m.Releases {
		if !releaseNamesModel(r, c.id.Model) {
			continue
		}
		cand := Candidate{Release: r, Decision: verify.Decide(c.id, r.Target(), a.policy(), c.verified.Evidence())}
		if r.Rollout != nil {
			e := r.Rollout.Evaluate(c.id.Serial, a.Config.Groups, now)
			cand.Eligibility = &e
		}
		cand.Quarantined = st.Quarantined(r.ID, m.Serial)
		c.out.Candidates = append(c.out.Candidates, cand)
	}
	for i := range c.out.Candidates {
		cand := &c.out.Candidates[i]
		switch {
		case !cand.Decision.Allowed && onlyCodes(cand.Decision, verify.CodeReinstallForbidden, verify.CodeDowngradeForbidden):
			upToDate = true
		case !cand.Decision.Allowed:
			refused = append(refused, cand)
		case cand.Quarantined, cand.Eligibility != nil && !cand.Eligibility.Eligible:
		case chosen == nil || newer(cand.Release, chosen.Release):
			chosen = cand
		}
	}
	for _, cand := range refused {
		c.noteRefusal(cand, m.Serial)
	}
	if chosen == nil {
		return c.nothingChosen(refused, upToDate)
	}
	chosen.Chosen = true
	rel := chosen.Release
	c.release = &rel
	c.out.Release = rel.ID
	if chosen.Eligibility != nil && chosen.Eligibility.Paused {
		c.out.Result = ResultPaused
		c.out.Codes = []string{CodeRolloutPaused}
		c.out.Message = fmt.Sprintf("release %s (%s) is allowed but its rollout is paused: no new install starts until the integrator resumes it", rel.ID, rel.Version)
		c.log.WithField("release", rel.ID).Info(c.out.Message)
		return nil, nil
	}
	if c.mode == ModeCheck {
		c.out.Result = ResultAvailable
		c.out.Message = fmt.Sprintf("release %s (%s %s) is allowed for %s", rel.ID, rel.Variant, rel.Version, c.id.Model)
		if !a.Config.TermsAccepted {
			c.out.Message += "; but terms_accepted is false, so nothing will be downloaded until the operator accepts the vendor's terms"
		}
		return nil, nil
	}
	if !a.Config.TermsAccepted {
		c.out.Result = ResultRefused
		c.out.Codes = []string{CodeTermsNotAccepted}
		terms := rel.TermsURL
		if terms == "" {
			terms = "the vendor's General Terms of Use"
		}
		c.out.Message = fmt.Sprintf("release %s is available, but nothing is downloaded until the operator accepts the vendor's terms: read %s, then set terms_accepted: true in the config", rel.ID, terms)
		c.log.Warn(c.out.Message)
		return nil, nil
	}
	return c.startUpdate(chosen)
}

// nothingChosen ends a cycle that found no release to install.
func (c *cycle) nothingChosen(refused []*Candidate, upToDate bool) (*state, error) {
	u := c.current()
	// A paused rollout holds an update in progress as it is: the
	// downloaded image waits for the integrator to resume it.
	if u != nil {
		for _, cand := range c.out.Candidates {
			if cand.Release.ID == u.ReleaseID && cand.Decision.Allowed && cand.Eligibility != nil && cand.Eligibility.Paused {
				c.out.Result = ResultPaused
				c.out.Codes = []string{CodeRolloutPaused}
				c.out.Message = fmt.Sprintf("release %s is paused by the integrator: the update in progress waits for the rollout to resume", u.ReleaseID)
				c.log.Info(c.out.Message)
				return nil, nil
			}
		}
	}
	// An update in progress for a release the manifest no longer offers is
	// abandoned: its image is removed.
	if u != nil && c.mode != ModeCheck {
		c.abandon(u, "the manifest no longer offers this release for this device")
	}
	switch {
	case len(refused) > 0 && !upToDate:
		c.out.Result = ResultRefused
		for _, cand := range refused {
			c.out.Codes = append(c.out.Codes, decisionCodes(cand.Decision)...)
		}
		c.out.Message = fmt.Sprintf("no allowed release for %s: %d refused by policy", c.id.Model, len(refused))
	default:
		c.out.Result = ResultNothing
		c.out.Codes = []string{c.nothingCode(upToDate)}
		c.out.Message = fmt.Sprintf("nothing to do: %s runs %s and the manifest (serial %d) offers nothing newer that applies", c.id.Model, c.id.FirmwareVersion, c.verified.Manifest.Serial)
	}
	c.log.Info(c.out.Message)
	return nil, nil
}

// nothingCode says why a cycle found nothing to do.
func (c *cycle) nothingCode(upToDate bool) string {
	switch {
	case len(c.out.Candidates) == 0:
		return CodeNoRelease
	case upToDate:
		return CodeUpToDate
	}
	for _, cand := range c.out.Candidates {
		if cand.Quarantined {
			return CodeQuarantined
		}
	}
	return CodeNotInRollout
}

// noteRefusal logs, audits and reports a refused release once per serial.
func (c *cycle) noteRefusal(cand *Candidate, serial int64) {
	d := cand.Decision
	fields := logrus.Fields{"release": cand.Release.ID, "version": cand.Release.Version, "variant": cand.Release.Variant, "codes": decisionCodes(d)}
	if c.mode == ModeCheck {
		return
	}
	st := c.a.Journal.State()
	if st.RefusalReported(cand.Release.ID, serial) {
		c.log.WithFields(fields).Debug("release refused by policy (already reported for this manifest serial)")
		return
	}
	c.log.WithFields(fields).Warn("release refused by policy: " + d.String())
	c.audit(audit.Entry{Event: audit.EventRefused, Release: cand.Release.ID, Codes: decisionCodes(d), Message: d.String()})
	c.sendReport(report.Report{ReleaseID: cand.Release.ID, Step: string(journal.StepDecide), Result: string(ResultRefused), Codes: decisionCodes(d), Message: d.String()})
	_ = c.a.Journal.Update(func(s *journal.State) error {
		if s.RefusalsReported == nil {
			s.RefusalsReported = map[string]int64{}
		}
		s.RefusalsReported[cand.Release.ID] = serial
		return nil
	})
}

// startUpdate begins (or continues) the update to the chosen release.
func (c *cycle) startUpdate(chosen *Candidate) (*state, error) {
	a := c.a
	rel := chosen.Release
	target := rel.Target()
	u := c.current()
	if u != nil && (u.ReleaseID != rel.ID || u.SHA256 != target.SHA256) {
		c.abandon(u, fmt.Sprintf("the manifest now offers release %s instead", rel.ID))
		u = nil
	}
	if u != nil && !sameDevice(u, c.id) {
		c.abandon(u, fmt.Sprintf("another recorder (%s, serial %s) now answers at the device address: starting over for it", c.id.Model, c.id.Serial))
		u = nil
	}
	if u == nil {
		relJSON, err := json.Marshal(rel)
		if err != nil {
			return nil, fatal(CodeInternal, err)
		}
		before, err := json.Marshal(c.id)
		if err != nil {
			return nil, fatal(CodeInternal, err)
		}
		st := a.Journal.State()
		if err := a.Journal.Update(func(s *journal.State) error {
			s.Current = &journal.Update{
				AttemptID: journal.NewAttemptID(),
				ReleaseID: rel.ID,
				Version:   rel.Version,
				Variant:   rel.Variant,
				SHA256:    target.SHA256,
				Size:      target.Size,
				ImagePath: a.imagePath(target.SHA256),
				Step:      journal.StepDecide,
				Attempts:  st.Attempts[rel.ID] + 1,
				Started:   a.now().UTC(),
				Serial:    c.verified.Manifest.Serial,
				Release:   relJSON,
				Before:    before,
			}
			return nil
		}); err != nil {
			return nil, transient(CodeInternal, err)
		}
		u = c.current()
		if a.Metrics != nil {
			a.Metrics.AttemptStarted()
		}
		c.withAttempt(u)
		c.log.WithFields(logrus.Fields{"version": rel.Version, "variant": rel.Variant, "attempt_number": u.Attempts}).Info("update started")
	} else {
		c.withAttempt(u)
		c.log.WithField("step", u.Step).Info("resuming the update")
	}
	switch u.Step {
	case journal.StepVerify, journal.StepWaitWindow:
		// A verified image is proven again before anything else uses it.
		facts, err := verify.InspectFile(u.ImagePath)
		if err == nil && facts.Size == u.Size && facts.SHA256 == u.SHA256 {
			c.facts = facts
			return stateVerify, nil
		}
		c.log.WithError(err).Warn("the staged image is gone, unreadable or changed: downloading it again")
		_ = os.Remove(u.ImagePath)
	}
	return stateDownload, nil
}

// download fetches the image into the state directory.
func (c *cycle) download(ctx context.Context) (*state, error) {
	a := c.a
	u := c.current()
	have := int64(0)
	if fi, err := os.Stat(u.ImagePath); err == nil && fi.Size() <= u.Size {
		have = fi.Size()
	}
	if err := os.MkdirAll(filepath.Dir(u.ImagePath), 0o700); err != nil {
		return nil, fatal(CodeInternal, fmt.Errorf("create the image folder: %w", err))
	}
	if err := fetch.CheckFreeSpace(filepath.Dir(u.ImagePath), u.Size-have+a.Config.Download.FreeSpaceMargin); err != nil {
		return nil, transient(CodeNoSpace, err)
	}
	urls := c.release.Image.URLs
	if a.OfflineDir != "" {
		urls = offlineImageURLs(a.OfflineDir, urls)
	}
	res, err := a.Downloader.Download(ctx, fetch.Request{URLs: urls, Path: u.ImagePath, Size: u.Size, SHA256: u.SHA256})
	if a.Metrics != nil {
		a.Metrics.AddDownloadBytes(res.BytesFetched)
	}
	if err != nil {
		return nil, err
	}
	c.facts = res.Facts
	c.log.WithFields(logrus.Fields{"bytes": res.Facts.Size, "fetched": res.BytesFetched, "resumed": res.Resumed, "url": redact.URL(res.URL)}).Info("image downloaded")
	_ = a.Journal.Update(func(s *journal.State) error {
		if s.Current != nil {
			s.Current.Bytes = res.Facts.Size
		}
		return nil
	})
	return stateVerify, nil
}

// verifyImage applies every policy rule to the staged image.
func (c *cycle) verifyImage(ctx context.Context) (*state, error) {
	d := verify.DecideImage(c.id, c.release.Target(), c.facts, c.a.policy(), c.verified.Evidence())
	if !d.Allowed {
		return nil, &refusal{decision: d, what: "after download"}
	}
	u := c.current()
	if !u.Verified {
		c.log.WithField("sha256", c.facts.SHA256).Info("image verified: size, SHA-256, format and policy")
		c.audit(audit.Entry{Event: audit.EventDownloadVerified, Message: fmt.Sprintf("%d bytes, sha256 %s", c.facts.Size, c.facts.SHA256)})
		if err := c.a.Journal.Update(func(s *journal.State) error {
			s.Current.Verified = true
			return nil
		}); err != nil {
			return nil, transient(CodeInternal, err)
		}
	}
	return stateWaitWindow, nil
}

// waitWindow lets the install start only inside a maintenance window,
// unless the operator said --now.
func (c *cycle) waitWindow(ctx context.Context) (*state, error) {
	now := c.a.now()
	if c.mode == ModeUpdateNow || c.a.Config.InWindow(now) {
		return stateInstall, nil
	}
	next := c.a.Config.NextWindow(now)
	// Waiting is not a crash: the steps every waiting cycle passes again
	// do not count towards the crash-loop cap.
	if err := c.a.Journal.Update(func(s *journal.State) error {
		delete(s.Current.StepEntries, journal.StepVerify)
		delete(s.Current.StepEntries, journal.StepWaitWindow)
		return nil
	}); err != nil {
		return nil, transient(CodeInternal, err)
	}
	c.out.Result = ResultWaiting
	c.out.NextWindow = next
	c.out.Message = fmt.Sprintf("release %s is downloaded and verified; the install waits for the next maintenance window at %s (use fwagent update --now to install now)", c.release.ID, next.Format("Mon 2006-01-02 15:04 MST"))
	c.log.Info(c.out.Message)
	return nil, nil
}

// install proves the staged image once more against a fresh identity, then
// hands it to the device.
func (c *cycle) install(ctx context.Context) (*state, error) {
	a := c.a
	u := c.current()
	// Nothing has reached the device yet: a failure here keeps the update
	// for the next window and counts no attempt.
	id, err := a.Device.Identify(ctx)
	if err != nil {
		return nil, keepUpdate(err)
	}
	if !verify.SameModel(id.Model, c.id.Model) || id.Serial != c.id.Serial {
		err := fmt.Errorf("the device changed since the decision (was %s %s, now %s %s): starting over on the next cycle", c.id.Model, c.id.Serial, id.Model, id.Serial)
		c.abandon(u, err.Error())
		return nil, transient(CodeDeviceChanged, err)
	}
	c.id = id
	facts, err := verify.InspectFile(u.ImagePath)
	if err == nil && (facts.Size != u.Size || facts.SHA256 != u.SHA256) {
		err = fmt.Errorf("it is %d bytes with SHA-256 %s, not the %d bytes with SHA-256 %s that were verified", facts.Size, facts.SHA256, u.Size, u.SHA256)
	}
	if err != nil {
		return nil, c.downloadAgain(fmt.Errorf("the staged image changed on disk since it was verified (%v): it is downloaded and proven again", err))
	}
	if d := verify.DecideImage(id, c.release.Target(), facts, a.policy(), c.verified.Evidence()); !d.Allowed {
		return nil, &refusal{decision: d, what: "immediately before install"}
	}
	c.audit(audit.Entry{Event: audit.EventInstallStarted, Message: fmt.Sprintf("%s %s onto %s (%s)", c.release.Variant, c.release.Version, id.Model, id.FirmwareVersion)})
	c.log.WithFields(logrus.Fields{"from": id.FirmwareVersion, "to": c.release.Version}).Info("install started")
	last := int64(-1)
	err = a.Device.Install(ctx, u.ImagePath, func(p device.InstallProgress) {
		if p.Phase == "flash" || p.Done > 0 {
			c.sent = true // image bytes reached the device
		}
		if a.InstallProgress != nil {
			a.InstallProgress(p)
		}
		if p.Phase == "flash" && p.Done/25 != last/25 {
			last = p.Done
			c.log.WithField("percent", p.Done).Info("device flashing")
		}
	})
	if errors.Is(err, device.ErrPendingImage) {
		return nil, endAttempt(CodePendingImage, err)
	}
	if err != nil {
		return nil, err
	}
	return stateReboot, nil
}

// reboot restarts the device onto the new firmware.
func (c *cycle) reboot(ctx context.Context) (*state, error) {
	c.log.Info("rebooting the device")
	if err := c.a.Device.Reboot(ctx); err != nil {
		return nil, err
	}
	return stateConfirm, nil
}

// confirm waits for the device and checks it now runs the release.
func (c *cycle) confirm(ctx context.Context) (*state, error) {
	after, err := c.a.Device.WaitReady(ctx)
	if err != nil {
		// Whatever the device says now (it is slow, its new firmware has
		// a new certificate, ...), the flash happened: the update stays in
		// the journal and the next cycle settles it by asking the device.
		return nil, keepUpdate(err)
	}
	return c.confirmed(after)
}

// confirmed checks after against the release and finishes the update.
func (c *cycle) confirmed(after device.Identity) (*state, error) {
	a := c.a
	u := c.current()
	before := c.id
	if len(u.Before) > 0 {
		_ = json.Unmarshal(u.Before, &before)
	}
	c.out.Identity = &after
	a.setStatus(func(s *Status) { s.Identity = &after })
	d := verify.ConfirmInstall(before, after, c.release.Target())
	if !d.Allowed && c.settled && after.FirmwareVersion == before.FirmwareVersion {
		return nil, endAttempt(CodeInstallInterrupted, fmt.Errorf("after the reboot the device still runs %s: the interrupted upload was not taken; recorded as a failed attempt", after.FirmwareVersion))
	}
	if !d.Allowed {
		return nil, &refusal{decision: d, what: "after install"}
	}
	c.id = after
	msg := fmt.Sprintf("installed and confirmed: %s now reports %s", after.Model, after.FirmwareVersion)
	c.log.WithField("firmware", after.FirmwareVersion).Info(msg)
	c.audit(audit.Entry{Event: audit.EventInstallConfirmed, Message: msg})
	if err := os.Remove(u.ImagePath); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.WithError(err).Warn("could not delete the installed image")
	}
	if err := a.Journal.Update(func(s *journal.State) error {
		delete(s.Attempts, u.ReleaseID)
		return nil
	}); err != nil {
		c.log.WithError(err).Warn("could not reset the attempt count")
	}
	// The report is queued before the journal forgets the update: a crash
	// in between sends it twice (the attempt id lets the server see that),
	// never not at all.
	c.sendReport(report.Report{ReleaseID: u.ReleaseID, AttemptID: u.AttemptID, Step: string(journal.StepDone), Result: string(ResultInstalled), Message: msg})
	if err := a.Journal.Finish(journal.Result{Outcome: journal.OutcomeSuccess, Step: journal.StepDone, Message: msg}); err != nil {
		return nil, transient(CodeInternal, err)
	}
	if a.Metrics != nil {
		a.Metrics.Result(string(ResultInstalled), "")
		a.Metrics.SetLastSuccess(a.now())
	}
	c.out.Result = ResultInstalled
	c.out.Message = msg
	return nil, nil
}

// settle finishes an update interrupted during install, reboot or confirm.
// It never uploads blindly: it asks the device what it runs first.
func (c *cycle) settle(ctx context.Context, u *journal.Update) (*state, error) {
	var rel manifest.Release
	if err := json.Unmarshal(u.Release, &rel); err != nil {
		return nil, fatal(CodeInternal, fmt.Errorf("the journal's release record is unreadable (%v): the update cannot be settled", err))
	}
	c.release = &rel
	if len(u.Before) > 0 {
		_ = json.Unmarshal(u.Before, &c.id)
	}
	target := rel.Target()
	c.log.WithField("step", u.Step).Warn("the agent stopped during the device steps: asking the device what it runs before doing anything")
	id, err := c.a.Device.Identify(ctx)
	if err != nil && (u.Step == journal.StepReboot || u.Step == journal.StepConfirm) && device.IsTransient(err) {
		// The agent stopped around the reboot: the device is most likely
		// still restarting. Wait for it as the confirm step would.
		c.log.WithError(err).Info("the device does not answer; it is probably restarting: waiting for it (reboot_timeout)")
		id, err = c.a.Device.WaitReady(ctx)
	}
	if err != nil {
		return nil, retryLaterErr(fmt.Errorf("settle the interrupted install: %w", err))
	}
	if runs(id, target) {
		if err := c.enter(journal.StepConfirm); err != nil {
			return nil, err
		}
		_, err := c.confirmed(id)
		return nil, err
	}
	status, err := c.a.Device.InstallStatus(ctx)
	if err != nil {
		return nil, retryLaterErr(fmt.Errorf("ask the device whether it is flashing: %w", err))
	}
	if status.Upgrading {
		c.log.WithField("percent", status.Percent).Info("the device is still flashing: waiting for it")
		if err := c.waitFlashing(ctx); err != nil {
			return nil, retryLaterErr(fmt.Errorf("wait for the device to finish flashing: %w", err))
		}
		return c.settledReboot()
	}
	switch u.Step {
	case journal.StepReboot:
		// Flashing had finished; the reboot may not have happened.
		return stateReboot, nil
	case journal.StepConfirm:
		return stateConfirm, nil
	}
	if status.Percent >= 100 {
		// The agent stopped after this attempt's upload was flashed and
		// before it recorded the reboot: the pending image is the one this
		// attempt proved and sent. Rebooting costs far less than a second
		// flash, and the confirm step checks what the device runs after.
		c.log.Info("the device finished flashing the image this attempt sent before the agent stopped: rebooting it")
		return c.settledReboot()
	}
	return nil, endAttempt(CodeInstallInterrupted, fmt.Errorf("the install was interrupted before the device took the image (it still runs %s and is not flashing): recorded as a failed attempt; the image is proven again before another try", id.FirmwareVersion))
}

// settledReboot goes on to the reboot after settle saw a finished flash. A
// confirm that then finds the old firmware ends the attempt (the upload had
// not been taken) instead of quarantining the release.
func (c *cycle) settledReboot() (*state, error) {
	c.settled = true
	return stateReboot, nil
}

// downloadAgain sends the update back to the download step (the staged
// image is removed and no longer counts as verified) and ends this cycle
// with err; no attempt is counted.
func (c *cycle) downloadAgain(err error) error {
	u := c.current()
	_ = os.Remove(u.ImagePath)
	if jerr := c.a.Journal.Update(func(s *journal.State) error {
		s.Current.Step = journal.StepDownload
		s.Current.Verified = false
		return nil
	}); jerr != nil {
		return transient(CodeInternal, jerr)
	}
	c.log.Warn(err.Error())
	return retryLater(CodeStagedImageChanged, err)
}

// waitFlashing polls the device until it stops flashing, bounded by the
// backend's flash timeout. A stop request does not interrupt it: the device
// is writing its flash, and the agent stays to see it end.
func (c *cycle) waitFlashing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.a.flashBound())
	defer cancel()
	for {
		status, err := c.a.Device.InstallStatus(ctx)
		if err != nil {
			return err
		}
		if !status.Upgrading {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.a.after(c.a.confirmPoll()):
		}
	}
}

// sameDevice reports whether id is the recorder the update u started on.
func sameDevice(u *journal.Update, id device.Identity) bool {
	var before device.Identity
	if len(u.Before) == 0 || json.Unmarshal(u.Before, &before) != nil {
		return true
	}
	return verify.SameModel(before.Model, id.Model) && before.Serial == id.Serial
}

// runs reports whether the device runs exactly the target version.
func runs(id device.Identity, target verify.Release) bool {
	have, err := verify.ParseVersion(id.FirmwareVersion)
	if err != nil {
		return false
	}
	want, err := verify.ParseVersion(target.Version)
	return err == nil && have.Compare(want) == 0
}

// abandon drops an update without counting a failure (the manifest moved
// on); its image is removed.
func (c *cycle) abandon(u *journal.Update, why string) {
	c.log.WithField("release", u.ReleaseID).Info("update abandoned: " + why)
	if u.ImagePath != "" {
		_ = os.Remove(u.ImagePath)
	}
	_ = c.a.Journal.Finish(journal.Result{Outcome: journal.OutcomeNothing, Message: "abandoned: " + why})
}

// fail is the one failure path: it classifies err, counts the attempt,
// quarantines the release when the failure is fatal or the attempts are
// used up, and records, audits and reports the failure.
func (c *cycle) fail(ctx context.Context, err error) {
	a := c.a
	var h *halted
	if errors.As(err, &h) {
		// A test seam stopped the agent as a crash would: nothing more is
		// recorded.
		c.out.Result = ResultStopped
		c.out.Err = err
		c.out.Message = err.Error()
		return
	}
	if stopped(ctx, err) {
		c.out.Result = ResultStopped
		c.out.Message = "stopped at a safe point; the journal resumes the update on the next start"
		c.log.Info(c.out.Message)
		return
	}
	class, codes := classify(err)
	if c.protectedUnresponsive(err) {
		codes = append([]string{CodeProtectedUnresponsive}, codes...)
		err = protectedUnresponsiveError(c.id, err)
	}
	if c.mode != ModeCheck {
		a.noteCredentials(codes, false)
	}
	c.out.Result = ResultFailed
	c.out.Err = err
	c.out.Codes = codes
	c.out.Message = err.Error()
	c.out.Transient = class == journal.ClassTransient
	if a.Metrics != nil {
		for _, code := range codes {
			a.Metrics.Result(string(ResultFailed), code)
		}
	}
	u := c.current()
	if u == nil || c.mode == ModeCheck {
		c.log.WithError(err).WithField("codes", codes).Error("cycle failed")
		if c.mode != ModeCheck {
			c.sendReport(report.Report{Step: "cycle", Result: string(ResultFailed), Codes: codes, Message: err.Error()})
		}
		return
	}
	c.out.Step = string(u.Step)
	// A fatal failure, or any failure of the install itself, ends the
	// attempt. A transient failure elsewhere keeps the update in the journal
	// and the next cycle resumes the same step (the step re-entry cap bounds
	// that).
	attemptOver := !keepsUpdate(err) && (class == journal.ClassFatal || u.Step == journal.StepInstall || endsAttempt(err))
	quarantine := attemptOver && (class == journal.ClassFatal || u.Attempts >= a.Config.MaxAttempts)
	fields := logrus.Fields{"codes": codes, "class": class, "step": u.Step, "attempt_number": u.Attempts}
	c.log.WithError(err).WithFields(fields).Error("update attempt failed")
	c.audit(audit.Entry{Event: audit.EventFailed, Codes: codes, Message: err.Error()})
	c.sendReport(report.Report{ReleaseID: u.ReleaseID, AttemptID: u.AttemptID, Step: string(u.Step), Result: string(ResultFailed), Codes: codes, Message: err.Error()})
	uerr := a.Journal.Update(func(s *journal.State) error {
		if attemptOver {
			if s.Attempts == nil {
				s.Attempts = map[string]int{}
			}
			s.Attempts[u.ReleaseID] = u.Attempts
		}
		s.Current.LastError = err.Error()
		s.Current.ErrorClass = class
		s.Current.Codes = codes
		if quarantine {
			if s.Quarantine == nil {
				s.Quarantine = map[string]journal.Quarantine{}
			}
			s.Quarantine[u.ReleaseID] = journal.Quarantine{Serial: u.Serial, Reason: fmt.Sprintf("%s after %d attempt(s): %v", class, u.Attempts, codes), At: a.now().UTC()}
		}
		return nil
	})
	if uerr != nil {
		c.log.WithError(uerr).Error("could not record the failure in the journal")
	}
	if quarantine {
		if u.ImagePath != "" {
			_ = os.Remove(u.ImagePath)
		}
		msg := fmt.Sprintf("release %s quarantined until a manifest with a serial above %d arrives", u.ReleaseID, u.Serial)
		c.log.Warn(msg)
		c.audit(audit.Entry{Event: audit.EventQuarantined, Codes: codes, Message: msg})
	}
	if attemptOver {
		if ferr := a.Journal.Finish(journal.Result{Outcome: journal.OutcomeFailure, Codes: codes, Message: err.Error(), ErrorClass: class}); ferr != nil {
			c.log.WithError(ferr).Error("could not record the result in the journal")
		}
	}
}

// report records a step change for the integrator.
func (c *cycle) report(step journal.Step, result string, codes []string, msg string) {
	if c.mode == ModeCheck {
		return
	}
	u := c.current()
	r := report.Report{Step: string(step), Result: result, Codes: codes, Message: msg}
	if u != nil {
		r.ReleaseID, r.AttemptID = u.ReleaseID, u.AttemptID
	}
	c.sendReport(r)
}

// sendReport queues r durably; the daemon flushes the queue.
func (c *cycle) sendReport(r report.Report) {
	a := c.a
	if a.Reports == nil || c.mode == ModeCheck {
		return
	}
	r.Time = a.now().UTC()
	r.DeviceSerial = reportSerial(c.id)
	r.Model = c.id.Model
	// Reports leave the site: they carry no personal data (addresses,
	// user names) and no secret, and fit the server's limits.
	r.Message = support.Redact(r.Message, false)
	if len(r.Message) > report.MaxMessage {
		r.Message = strings.ToValidUTF8(r.Message[:report.MaxMessage-3], "") + "..."
	}
	r.FirmwareVersion = c.id.FirmwareVersion
	if r.Version == "" && c.release != nil && r.ReleaseID == c.release.ID {
		r.Version = c.release.Version
	}
	r.AgentVersion = a.Version
	if a.Audit != nil {
		r.AuditSeq, r.AuditHead = a.Audit.Head()
	}
	if err := a.Reports.Enqueue(r); err != nil {
		c.log.WithError(err).Error("could not queue a report")
	}
}

// reportSerial names the device in reports: its serial, or, for a device
// that reports none, its MAC address, so that its reports are still
// accepted and counted.
func reportSerial(id device.Identity) string {
	if s := strings.TrimSpace(id.Serial); s != "" {
		return s
	}
	if mac := strings.TrimSpace(id.Raw["macAddress"]); mac != "" {
		return "mac:" + mac
	}
	return "unknown-serial"
}

// audit appends e to the audit trail with the cycle's ids.
func (c *cycle) audit(e audit.Entry) {
	if c.a.Audit == nil || c.mode == ModeCheck {
		return
	}
	if e.Release == "" {
		e.Release = c.out.Release
	}
	if e.Attempt == "" {
		e.Attempt = c.out.Attempt
	}
	e.Time = c.a.now().UTC()
	if err := c.a.Audit.Append(e); err != nil {
		c.log.WithError(err).Error("could not append to the audit trail")
	}
}

// releaseNamesModel reports whether r lists model (exactly, see verify.SameModel).
func releaseNamesModel(r manifest.Release, model string) bool {
	for _, m := range r.Models {
		if verify.SameModel(m, model) {
			return true
		}
	}
	return false
}

// onlyCodes reports whether every reason of d is one of codes.
func onlyCodes(d verify.Decision, codes ...verify.Code) bool {
	if len(d.Reasons) == 0 {
		return false
	}
	for _, r := range d.Reasons {
		found := false
		for _, c := range codes {
			found = found || r.Code == c
		}
		if !found {
			return false
		}
	}
	return true
}

// newer reports whether a is a newer version than b.
func newer(a, b manifest.Release) bool {
	va, errA := verify.ParseVersion(a.Version)
	vb, errB := verify.ParseVersion(b.Version)
	if errA != nil || errB != nil {
		return false
	}
	return va.Compare(vb) > 0
}

// offlineManifestName is the signed manifest's file name in an offline folder.
const offlineManifestName = "manifest.json"

// offlineImageURLs maps each image URL to the file of the same base name in
// dir: an offline folder holds the manifest and the images side by side.
func offlineImageURLs(dir string, urls []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, raw := range urls {
		name := raw
		if u, err := url.Parse(raw); err == nil {
			name = u.Path
		}
		name = path.Base(name)
		if seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, "file://"+filepath.Join(dir, name))
	}
	return out
}
