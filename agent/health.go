package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/reason"
)

// Codes of the checks before and after an install (issue 14). Deferrals
// end the cycle without counting an attempt; installed_degraded ends it
// with the firmware installed and the recorder not fully back at work.
const (
	// CodeDiskBusy: a disk is formatting or repairing; the install waits.
	CodeDiskBusy = string(reason.DiskBusy)
	// CodeUpgradeRunning: the recorder is already flashing an image.
	CodeUpgradeRunning = string(reason.UpgradeRunning)
	// CodeHealthUnreadable: the recorder's health reply could not be read.
	CodeHealthUnreadable = string(reason.HealthUnreadable)
	// CodeBackupFailed: the required configuration backup failed.
	CodeBackupFailed = string(reason.BackupFailed)
	// CodeBackupNotSupported: the recorder cannot export its configuration
	// and install.config_backup is required.
	CodeBackupNotSupported = string(reason.BackupNotSupported)
	// CodeInstalledDegraded: installed, but channels or disks did not
	// return to the baseline within confirm.health_timeout.
	CodeInstalledDegraded = string(reason.InstalledDegraded)
)

// statePreflight checks the recorder before the upload: its health (a busy
// disk or a running upgrade defers the install) and the configuration
// backup; it records the baseline in the journal (-> stateInstall, or the
// end of the cycle when the install is deferred). It is no journal step:
// it changes nothing on the device, and an interrupted one is run again.
//
// Deferrals are no failures: the cycle ends with ResultDeferred, the update
// stays at wait_window, no attempt is counted:
//
//	disk formatting/repairing               -> deferred (disk_busy)
//	upgrade already running                 -> deferred (upgrade_running)
//	health reply unreadable                 -> deferred (health_unreadable)
//	health not supported                    -> logged once, no baseline, go on
//	backup failed, required                 -> deferred (config_backup_failed)
//	backup not supported, required          -> deferred (config_backup_not_supported)
//	backup failed/unsupported, best_effort  -> logged, go on
var statePreflight = &state{
	name:    "preflight",
	run:     (*cycle).preflight,
	retries: "the device backend's retries of each health and export request",
	failures: failureTable{
		classUnavailable: nextCycle, // the recorder did not answer: nothing is known
		classDevice:      nextCycle,
		classLocal:       nextCycle, // the backup or the journal could not be written
		classBroken:      quarantine,
	},
}

// healthRecord is what the journal keeps of the checks before the upload.
type healthRecord struct {
	// Baseline is the health read before the upload; nil when the
	// recorder (or backend) has none to offer.
	Baseline *device.Health `json:"baseline,omitempty"`
	// Backup is the configuration backup made before the upload.
	Backup *Backup `json:"backup,omitempty"`
	// Read is when the baseline was read.
	Read time.Time `json:"read"`
}

// preflight runs the checks before the upload.
func (c *cycle) preflight(ctx context.Context) (*state, error) {
	a := c.a
	rec := healthRecord{Read: a.now().UTC()}
	h, err := c.readHealth(ctx)
	switch {
	case err != nil && (device.IsTransient(err) || refusedLogin(err)):
		// Nothing is known, or the recorder refused the credentials: the
		// failure path handles it (a refused login is never repeated).
		return nil, err
	case err != nil:
		return c.deferInstall(CodeHealthUnreadable, fmt.Sprintf("the recorder's health could not be read (%v): the install waits; check the recorder's ContentMgmt/Storage and InputProxy/channels/status replies", err))
	}
	if h != nil {
		if busy := h.BusyDisks(); len(busy) > 0 {
			return c.deferInstall(CodeDiskBusy, fmt.Sprintf("%s: the install waits until the recorder finishes (retried on the next cycle)", describeDisks(busy)))
		}
		if h.Upgrade.Upgrading {
			return c.deferInstall(CodeUpgradeRunning, fmt.Sprintf("the recorder is already flashing an image (%d%%): the install waits until it finishes (retried on the next cycle)", h.Upgrade.Percent))
		}
		rec.Baseline = h
		c.log.WithFields(logrus.Fields{"online_channels": len(h.OnlineChannels()), "channels": len(h.Channels), "disks": len(h.Disks), "healthy_disks": countHealthy(h.Disks)}).Info("recorder health before the upload recorded")
	}
	b, err := c.backupBeforeUpload(ctx)
	if err != nil {
		var d *deferral
		if errors.As(err, &d) {
			return c.deferInstall(d.code, d.msg)
		}
		return nil, err
	}
	rec.Backup = b
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, failed(classLocal, CodeInternal, err)
	}
	if err := a.Journal.Update(func(s *journal.State) error {
		s.Current.Health = raw
		return nil
	}); err != nil {
		return nil, failed(classLocal, CodeInternal, err)
	}
	return stateInstall, nil
}

// readHealth reads the recorder's health, or returns nil when the backend
// or the recorder has none (logged once per process).
func (c *cycle) readHealth(ctx context.Context) (*device.Health, error) {
	hr, ok := c.a.Device.(device.HealthReader)
	if !ok {
		c.noteOnce("health-backend", "this device backend cannot read the recorder's health: installs go on without the disk and channel checks")
		return nil, nil
	}
	h, err := hr.Health(ctx)
	if errors.Is(err, device.ErrNotSupported) {
		c.noteOnce("health-recorder", "the recorder does not report its disks nor its channels (older firmware): installs go on without the health checks")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, part := range h.Unsupported {
		c.noteOnce("health-"+part, "the recorder does not report its "+part+": that part of the health checks is skipped")
	}
	return &h, nil
}

// noteOnce logs msg at info level once per agent process.
func (c *cycle) noteOnce(key, msg string) {
	if _, seen := c.a.noted.LoadOrStore(key, true); !seen {
		c.log.Info(msg)
	}
}

// deferral is a check before the upload that makes the install wait.
type deferral struct {
	code, msg string
}

func (d *deferral) Error() string { return d.msg }

// deferInstall ends the cycle with the install deferred: the update stays
// at wait_window, no attempt is counted, and the crash-loop counters of
// the steps every deferred cycle passes again are reset.
func (c *cycle) deferInstall(code, msg string) (*state, error) {
	a := c.a
	if err := a.Journal.Update(func(s *journal.State) error {
		if s.Current != nil {
			s.Current.Step = journal.StepWaitWindow
			delete(s.Current.StepEntries, journal.StepVerify)
			delete(s.Current.StepEntries, journal.StepWaitWindow)
			s.Current.LastError = msg
			s.Current.Codes = []string{code}
		}
		return nil
	}); err != nil {
		return nil, failed(classLocal, CodeInternal, err)
	}
	c.out.Result = ResultDeferred
	c.out.Codes = []string{code}
	c.out.Message = "install deferred: " + msg
	c.log.WithField("code", code).Warn(c.out.Message)
	c.audit(audit.Entry{Event: audit.EventInstallDeferred, Codes: []string{code}, Message: msg})
	u := c.current()
	// Report servers know the results installed, failed and refused: a
	// deferral is a step report (no result) at wait_window with its code.
	r := report.Report{Step: string(journal.StepWaitWindow), Codes: []string{code}, Message: c.out.Message}
	if u != nil {
		r.ReleaseID, r.AttemptID = u.ReleaseID, u.AttemptID
	}
	c.sendReport(r)
	if a.Metrics != nil {
		a.Metrics.Result(string(ResultDeferred), code)
	}
	return nil, nil
}

// degradation is what did not come back after the install.
type degradation struct {
	// MissingChannels were online before the upload and are not now.
	MissingChannels []string `json:"missing_channels,omitempty"`
	// OnlineBefore and OnlineAfter count the online channels.
	OnlineBefore int `json:"online_before"`
	OnlineAfter  int `json:"online_after"`
	// WorseDisks are disks in a worse state than before (or gone).
	WorseDisks []diskChange `json:"worse_disks,omitempty"`
	// Unreadable says why the health could not be read after the install.
	Unreadable string `json:"unreadable,omitempty"`
	tolerance  int
}

// diskChange is a disk whose state got worse.
type diskChange struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Before string `json:"before"`
	After  string `json:"after"` // "missing" when the disk is gone
}

// degraded reports whether d is more than the tolerance allows.
func (d *degradation) degraded() bool {
	return d.Unreadable != "" || len(d.MissingChannels) > d.tolerance || len(d.WorseDisks) > 0
}

// String names what did not come back and what to check.
func (d *degradation) String() string {
	var parts []string
	if d.Unreadable != "" {
		parts = append(parts, "the recorder's health could not be read after the install ("+d.Unreadable+")")
	}
	if len(d.MissingChannels) > 0 {
		word := "channel"
		if len(d.MissingChannels) > 1 {
			word = "channels"
		}
		parts = append(parts, fmt.Sprintf("%s %s did not come back online (%d of %d online; channel_tolerance %d)", word, strings.Join(d.MissingChannels, ", "), d.OnlineAfter, d.OnlineBefore, d.tolerance))
	}
	for _, dc := range d.WorseDisks {
		name := "disk " + dc.ID
		if dc.Name != "" {
			name += " (" + dc.Name + ")"
		}
		parts = append(parts, fmt.Sprintf("%s went from %s to %s", name, dc.Before, dc.After))
	}
	return strings.Join(parts, "; ")
}

// compareHealth compares the health after the install with the baseline.
// Parts the baseline lacks are not compared; a part the recorder reported
// before and no longer reports counts as lost.
func compareHealth(before, after device.Health, tolerance int) *degradation {
	d := &degradation{tolerance: tolerance}
	if before.Supports(device.PartChannels) {
		online := map[string]bool{}
		if after.Supports(device.PartChannels) {
			for _, id := range after.OnlineChannels() {
				online[id] = true
			}
		}
		for _, id := range before.OnlineChannels() {
			d.OnlineBefore++
			if online[id] {
				d.OnlineAfter++
			} else {
				d.MissingChannels = append(d.MissingChannels, id)
			}
		}
	}
	if before.Supports(device.PartDisks) {
		now := map[string]device.Disk{}
		if after.Supports(device.PartDisks) {
			for _, dk := range after.Disks {
				now[dk.Kind+"/"+dk.ID] = dk
			}
		}
		for _, b := range before.Disks {
			a, ok := now[b.Kind+"/"+b.ID]
			switch {
			case !ok:
				d.WorseDisks = append(d.WorseDisks, diskChange{ID: b.ID, Name: b.Name, Before: b.Status, After: "missing"})
			case a.Class().Rank() > b.Class().Rank():
				d.WorseDisks = append(d.WorseDisks, diskChange{ID: b.ID, Name: b.Name, Before: b.Status, After: a.Status})
			}
		}
	}
	return d
}

// healthAfter waits, bounded by confirm.health_timeout, for the recorder's
// channels and disks to return to the baseline recorded before the upload,
// polling every confirm.health_poll. It returns nil when they did (or when
// there is no baseline to compare with), else what did not come back.
func (c *cycle) healthAfter(ctx context.Context, u *journal.Update) *degradation {
	a := c.a
	var rec healthRecord
	if len(u.Health) == 0 || json.Unmarshal(u.Health, &rec) != nil || rec.Baseline == nil {
		return nil
	}
	hr, ok := a.Device.(device.HealthReader)
	if !ok {
		return nil
	}
	cfg := a.Config.Confirm
	// The wait runs to its end even when the agent is asked to stop: it is
	// part of the confirm step, bounded by health_timeout.
	ctx = context.WithoutCancel(ctx)
	deadline := time.NewTimer(cfg.HealthTimeout)
	defer deadline.Stop()
	var last *degradation
	for {
		h, err := hr.Health(ctx)
		if err == nil || errors.Is(err, device.ErrNotSupported) {
			// A recorder that stopped reporting a part it reported before
			// has lost it: compareHealth counts it so.
			last = compareHealth(*rec.Baseline, h, cfg.ChannelTolerance)
			if !last.degraded() {
				if len(last.MissingChannels) > 0 {
					c.log.WithField("missing_channels", last.MissingChannels).Warn("channels still offline after the install, within confirm.channel_tolerance")
				}
				c.log.WithFields(logrus.Fields{"online_channels": last.OnlineAfter, "baseline": last.OnlineBefore}).Info("the recorder is back at work: channels and disks as before the upload")
				return nil
			}
		} else {
			if refusedLogin(err) {
				// Polling on would lock the account.
				c.log.WithError(err).Warn("the recorder refused the credentials while its health was read after the install")
				return &degradation{Unreadable: err.Error(), tolerance: cfg.ChannelTolerance}
			}
			if last == nil || last.Unreadable != "" {
				last = &degradation{Unreadable: err.Error(), tolerance: cfg.ChannelTolerance}
			}
			c.log.WithError(err).Debug("reading the recorder's health after the install")
		}
		select {
		case <-deadline.C:
			c.log.WithField("health_timeout", cfg.HealthTimeout).Warn("the recorder did not return to its health baseline within confirm.health_timeout: " + last.String())
			return last
		case <-a.after(cfg.HealthPoll):
		}
	}
}

// refusedLogin reports whether err is the recorder refusing the credentials
// or a locked account: never worth a second try.
func refusedLogin(err error) bool {
	return errors.Is(err, device.ErrBadCredentials) || errors.Is(err, device.ErrLocked)
}

// describeDisks names disks and their states for a message.
func describeDisks(disks []device.Disk) string {
	parts := make([]string, 0, len(disks))
	for _, d := range disks {
		s := "disk " + d.ID
		if d.Name != "" {
			s += " (" + d.Name + ")"
		}
		parts = append(parts, s+" is "+d.Status)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func countHealthy(disks []device.Disk) int {
	n := 0
	for _, d := range disks {
		if d.Class() == device.DiskHealthy {
			n++
		}
	}
	return n
}
