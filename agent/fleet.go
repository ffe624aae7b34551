package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/reason"
)

// FleetLink is the agent's side of the fleet server (fleet.url): a signed
// check-in answered with holds. *fleet.Client implements it.
type FleetLink interface {
	CheckIn(ctx context.Context, c fleet.CheckIn) (fleet.CheckInReply, error)
}

var _ FleetLink = (*fleet.Client)(nil)

// CodeFleetHold: the fleet server holds the release (fwctl fleet pause or
// its auto-pause); no new install of it starts until it is resumed.
const CodeFleetHold = string(reason.FleetHold)

// fleetCheckInTimeout bounds one check-in (the client's own retries
// included).
const fleetCheckInTimeout = 2 * time.Minute

// fleetState is what the agent knows from its last check-in.
type fleetState struct {
	mu    sync.Mutex
	last  time.Time // last answered check-in
	holds []fleet.Hold
	// asked is the interval the server asked for in its last reply
	// (CheckInReply.CheckInSeconds; 0: none).
	asked time.Duration
	// announced is the asked interval the last answered check-in was sent
	// with: a longer one the server asks for spaces the check-ins only
	// once a check-in has announced it (checkInIntervals).
	announced time.Duration
}

// maxFleetCheckInInterval caps the interval a fleet server may ask for.
const maxFleetCheckInInterval = 24 * time.Hour

// fleetInterval is the least time between check-ins at polls:
// fleet.checkin_interval, stretched to what the server asked for (to shed
// load), at most maxFleetCheckInInterval. A server can make the agent
// check in less often, never more often than configured; the check-in
// before an upload happens whatever the interval, so a hold still stops an
// install.
func fleetInterval(configured, asked time.Duration) time.Duration {
	if asked <= configured {
		return configured
	}
	return min(asked, max(configured, maxFleetCheckInInterval))
}

// checkInIntervals returns, for a check-in at a poll, how long after the
// last check-in it is due (due) and the interval it announces to the
// server (announce, CheckIn.IntervalSeconds), from fleet.checkin_interval,
// the intervals the server asked for (asked, in its last reply; announced,
// in the reply before the last answered check-in) and the daemon's
// longest sleep between two polls.
//
// The agent checks in only at its polls, so each check-in announces the
// longer of its interval and that sleep. A check-in comes at most
// due + sleep after the one before it, plus the time its cycle takes to
// reach it (a poll sooner than due, a retry or a window opening, skips
// its check-in; the next poll comes within sleep). Since due is at most
// what the check-in before announced, a gap stays under twice that, and
// the server marks a device stale after three (fleet.StaleIntervals): a
// running agent does not go stale. A longer interval the server asks for
// is announced first and spaces the check-ins from the next one on; until
// then the agent keeps to what it last announced.
func checkInIntervals(configured, asked, announced, sleep time.Duration) (due, announce time.Duration) {
	due = fleetInterval(configured, min(asked, announced))
	announce = max(fleetInterval(configured, asked), sleep)
	return due, announce
}

// fleetHold reports whether the fleet server holds releaseID.
func (a *Agent) fleetHold(releaseID string) (fleet.Hold, bool) {
	a.fleet.mu.Lock()
	defer a.fleet.mu.Unlock()
	for _, h := range a.fleet.holds {
		if h.ReleaseID == releaseID {
			return h, true
		}
	}
	return fleet.Hold{}, false
}

// checkIn tells the fleet server where the device stands and learns its
// holds: at a poll once the check-in is due (checkInIntervals), and always
// when force (before an upload, after an attempt ends). A check-in that
// fails changes nothing: the holds known before stay in force (a hold only
// ever stops), and the cycle goes on.
//
// Failure table: any error (server down, 4xx, 5xx, timeout) -> logged,
// holds unchanged, no retry beyond the client's own (fleet.Client, one
// owner); the next poll checks in again.
func (c *cycle) checkIn(ctx context.Context, force bool) {
	c.sendCheckIn(ctx, force, c.id, nil)
}

// checkInUnanswered checks in (once due) for a cycle that failed before
// the recorder gave its identity: unreachable, timed out,
// refused the credentials. It sends the identity the recorder last
// answered with (identity.json) and the cycle's failure as the last result
// and code, with no step under way, so the server shows the device as
// failed with that code (the agent is alive, its recorder does not answer)
// instead of stale. With no identity known yet nothing is sent: a check-in
// always names a serial.
func (c *cycle) checkInUnanswered(ctx context.Context) {
	a := c.a
	if a.Fleet == nil || c.mode == ModeCheck || c.out.Result != ResultFailed || ctx.Err() != nil {
		return
	}
	id := a.lastIdentity()
	if strings.TrimSpace(id.Serial) == "" {
		c.log.Debug("no fleet check-in: the recorder has never given its identity")
		return
	}
	c.sendCheckIn(ctx, false, id, func(ci *fleet.CheckIn) {
		ci.Step, ci.Progress = "", 0
		ci.LastResult, ci.LastCode = fleet.ResultFailed, fleetCode(c.out.Codes)
		if ci.ReleaseID != "" {
			ci.LastReleaseID = ci.ReleaseID
		}
	})
}

// sendCheckIn sends a check-in for id; edit, when not nil, changes it
// before it is signed.
func (c *cycle) sendCheckIn(ctx context.Context, force bool, id device.Identity, edit func(*fleet.CheckIn)) {
	a := c.a
	if a.Fleet == nil || c.mode == ModeCheck {
		return
	}
	a.fleet.mu.Lock()
	last, asked, announced := a.fleet.last, a.fleet.asked, a.fleet.announced
	a.fleet.mu.Unlock()
	due, iv := checkInIntervals(a.Config.Fleet.CheckInInterval, asked, announced, a.longestSleep())
	now := a.now()
	if !force && !last.IsZero() && now.Sub(last) < due && !now.Before(last) {
		return
	}
	st := a.Journal.State()
	ci := fleet.CheckIn{
		Serial: reportSerial(id), Model: id.Model, Firmware: id.FirmwareVersion, DeviceName: a.Name, Site: c.fleetSite(),
		Step: string(journal.StepIdle), AgentVersion: a.Version, Groups: a.Config.Groups, IntervalSeconds: int64((iv + time.Second - 1) / time.Second),
	}
	if ci.Model == "" {
		ci.Model = "unknown"
	}
	if cur := st.Current; cur != nil {
		ci.Step, ci.ReleaseID, ci.Progress = string(cur.Step), cur.ReleaseID, checkInProgress(cur)
	}
	if r := st.LastResult; r != nil {
		switch r.Outcome {
		case journal.OutcomeSuccess:
			ci.LastResult = fleet.ResultInstalled
		case journal.OutcomeFailure:
			ci.LastResult = fleet.ResultFailed
		case journal.OutcomeRefused:
			ci.LastResult = fleet.ResultRefused
		}
		if ci.LastResult != "" {
			ci.LastReleaseID = r.ReleaseID
			ci.LastCode = fleetCode(r.Codes)
		}
	}
	if st.LastSerial > 0 {
		ci.ManifestSerial = uint64(st.LastSerial)
	}
	if a.Reports != nil {
		ci.QueueDepth = a.Reports.Len()
	}
	if edit != nil {
		edit(&ci)
	}
	// Only the copy sent is fitted: the cycle keeps deciding on id.
	if changed := ci.Fit(); len(changed) > 0 {
		c.log.WithField("fields", strings.Join(changed, ",")).Info("the check-in's fields were fitted to the fleet protocol's limits (an over-long or garbled value from the recorder): the server shows them cut or with ? marks")
	}
	cctx, cancel := context.WithTimeout(ctx, fleetCheckInTimeout)
	defer cancel()
	reply, err := a.Fleet.CheckIn(cctx, ci)
	if err != nil {
		var se *fleet.StatusError
		if errors.As(err, &se) && se.Status == 403 {
			c.log.WithError(err).Error("the fleet server refuses this device's key: if the recorder's state directory was replaced, ask the integrator to run fwctl fleet forget " + ci.Serial)
		} else {
			c.log.WithError(err).Warn("fleet check-in failed: the holds known before stay in force")
		}
		return
	}
	a.fleet.mu.Lock()
	a.fleet.last, a.fleet.holds = now, reply.Holds
	a.fleet.announced, a.fleet.asked = asked, 0
	if reply.CheckInSeconds > 0 {
		a.fleet.asked = time.Duration(min(reply.CheckInSeconds, int64(maxFleetCheckInInterval/time.Second))) * time.Second
	}
	a.fleet.mu.Unlock()
	if reply.Enrolment == fleet.EnrolPending {
		c.log.Info("the fleet server has not approved this device's key yet: the integrator runs fwctl fleet approve " + ci.Serial)
	}
	for _, h := range reply.Holds {
		c.log.WithField("held_release", h.ReleaseID).Debug("the fleet server holds a release: " + h.Reason)
	}
}

// checkInProgress is the percent of update u's step that a check-in
// shows: in the download step, the share of the image staged on disk (the
// partial file the next try resumes, counted as download counts it: the
// journal's Bytes is written only once the download is done, and is not
// reset when a changed image is downloaded again); 0 (none) in every other
// step. The agent checks in before an upload and after an attempt ends,
// never during an install, so it knows no honest percent of the later
// steps.
func checkInProgress(u *journal.Update) int {
	if u.Step != journal.StepDownload || u.Size <= 0 {
		return 0
	}
	fi, err := os.Stat(u.ImagePath)
	if err != nil || fi.Size() > u.Size {
		return 0 // nothing staged, or a file the next try starts over
	}
	return int(fi.Size() * 100 / u.Size)
}

// fleetSite is the site a check-in names: fleet.site, or none. Not the
// host name: a check-in carries no personal data, and a host name may
// name a person (annas-laptop).
func (c *cycle) fleetSite() string {
	return c.a.Config.Fleet.Site
}

// fleetCode is the one reason code a check-in carries for codes: the
// first, except that pending_image wins (the server shows it as its own
// state; it may follow protected_model_unresponsive).
func fleetCode(codes []string) string {
	if slices.Contains(codes, fleet.CodePendingImage) {
		return fleet.CodePendingImage
	}
	if len(codes) > 0 {
		return codes[0]
	}
	return ""
}

// heldByFleet ends the cycle when the fleet server holds release rel
// (before a download starts). The update in progress, if any, stays in the
// journal as it is.
func (c *cycle) heldByFleet(releaseID, when string) bool {
	h, held := c.a.fleetHold(releaseID)
	if !held {
		return false
	}
	c.out.Result = ResultPaused
	c.out.Codes = []string{CodeFleetHold}
	c.out.Message = fmt.Sprintf("release %s is held by the fleet server (%s): %s; it starts when the integrator resumes it (fwctl fleet resume)", releaseID, h.Reason, when)
	c.log.WithField("release", releaseID).Warn(c.out.Message)
	return true
}

// fleetHoldsUpload checks in (always: a pause must stop an install even
// in the middle of a long download) and ends the cycle before the upload
// when the fleet server holds the release. A recorder already flashed
// (reboot, confirm) is never held: the hold is asked only for a new upload.
func (c *cycle) fleetHoldsUpload(ctx context.Context, step journal.Step) (held bool, err error) {
	a := c.a
	if a.Fleet == nil || step != journal.StepInstall || c.release == nil {
		return false, nil
	}
	c.checkIn(ctx, true)
	if !c.heldByFleet(c.release.ID, "nothing was uploaded, the verified image waits") {
		return false, nil
	}
	if err := c.forgetHeldSteps(); err != nil {
		return false, err
	}
	return true, nil
}

// sealReport signs a report for the fleet server when it is queued
// (sendReport, the one place that queues reports, fitted it to the
// protocol's limits).
func sealReport(key *fleet.DeviceKey) func(report.Report) ([]byte, error) {
	return func(r report.Report) ([]byte, error) {
		env, _, err := key.SignReport(fleet.Report{Report: r})
		if err != nil {
			return nil, err
		}
		return env.Marshal(), nil
	}
}
