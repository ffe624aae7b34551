package agent

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// stateDecide chooses the release for this device and rollout (->
// stateDownload, stateVerify, or the end: nothing to do, refused, paused,
// terms not accepted). A release the policy refuses is not a failure: it is
// logged, audited and reported once per manifest serial, and the cycle ends
// refused.
var stateDecide = &state{
	name: string(journal.StepDecide),
	run:  (*cycle).decide,
	failures: failureTable{
		classLocal:  nextCycle,
		classBroken: quarantine,
	},
}

// decide chooses the release for this device: among the releases naming its
// model, those the policy allows, the rollout admits and no quarantine holds;
// the newest wins. Refusals are logged, audited and reported once per
// manifest serial.
func (c *cycle) decide(ctx context.Context) (*state, error) {
	a := c.a
	c.checkIn(ctx, false)
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
	if c.heldByFleet(rel.ID, "no download or install starts") {
		return nil, nil
	}
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
			return nil, failed(classBroken, CodeInternal, err)
		}
		before, err := json.Marshal(c.id)
		if err != nil {
			return nil, failed(classBroken, CodeInternal, err)
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
			return nil, failed(classLocal, CodeInternal, err)
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
		// A verified image is proven again before anything else uses it
		// (in a site's cache, never while another recorder writes it).
		unlock := a.lockImage(u.SHA256, false)
		facts, err := verify.InspectFile(u.ImagePath)
		unlock()
		if err == nil && facts.Size == u.Size && facts.SHA256 == u.SHA256 {
			c.facts = facts
			return stateVerify, nil
		}
		c.log.WithError(err).Warn("the staged image is gone, unreadable or changed: downloading it again")
		if rerr := a.removeImage(u.SHA256, u.ImagePath); rerr != nil {
			c.log.WithError(rerr).Warn("could not remove the staged image")
		}
	}
	return stateDownload, nil
}

// sameDevice reports whether id is the recorder the update u started on.
func sameDevice(u *journal.Update, id device.Identity) bool {
	var before device.Identity
	if len(u.Before) == 0 || json.Unmarshal(u.Before, &before) != nil {
		return true
	}
	return verify.SameModel(before.Model, id.Model) && before.Serial == id.Serial
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
