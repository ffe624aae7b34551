package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/verify"
)

// stateReboot reboots the device (-> stateConfirm).
var stateReboot = &state{
	name:    string(journal.StepReboot),
	journal: journal.StepReboot,
	run:     (*cycle).reboot,
	device:  true,
	sent:    true,
	failures: failureTable{
		classUnavailable: nextCycle,
		classLocal:       nextCycle,
		classDevice:      quarantine,
		classBroken:      quarantine,
	},
}

// stateConfirm waits for the device and checks its new version (-> end).
// Whatever keeps it from an answer, the flash happened: the update stays in
// the journal and the next cycle settles it by asking the device.
var stateConfirm = &state{
	name:    string(journal.StepConfirm),
	journal: journal.StepConfirm,
	run:     (*cycle).confirm,
	device:  true,
	sent:    true,
	retries: "polls the device until reboot_timeout",
	failures: failureTable{
		classUnavailable: nextCycle,
		classDevice:      nextCycle,
		classLocal:       nextCycle,
		classInterrupted: newAttempt, // settle rebooted a flash that had not been taken
		classRefused:     quarantine, // post_install_mismatch: another model or version
		classBroken:      quarantine,
	},
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
	if c.seen != nil {
		// settle asked the device already: it runs the release.
		after := *c.seen
		c.seen = nil
		return c.confirmed(ctx, after)
	}
	after, err := c.a.Device.WaitReady(ctx)
	if err != nil {
		// Whatever the device says now (it is slow, its new firmware has
		// a new certificate, ...), the flash happened: the update stays in
		// the journal and the next cycle settles it by asking the device.
		return nil, err
	}
	return c.confirmed(ctx, after)
}

// confirmed checks after against the release, then the recorder's health
// against the baseline recorded before the upload (health.go), and
// finishes the update: installed, or installed_degraded.
func (c *cycle) confirmed(ctx context.Context, after device.Identity) (*state, error) {
	a := c.a
	u := c.current()
	before := c.id
	if len(u.Before) > 0 {
		_ = json.Unmarshal(u.Before, &before)
	}
	c.out.Identity = &after
	a.setStatus(func(s *Status) { s.Identity = &after })
	// identity.json follows the new firmware: the fleet check-in of a
	// recorder that stops answering, and support bundles, read it.
	a.keepIdentity(after)
	d := verify.ConfirmInstall(before, after, c.release.Target())
	if !d.Allowed && c.settled && after.FirmwareVersion == before.FirmwareVersion {
		return nil, failed(classInterrupted, CodeInstallInterrupted, fmt.Errorf("after the reboot the device still runs %s: the interrupted upload was not taken; recorded as a failed attempt", after.FirmwareVersion))
	}
	if !d.Allowed {
		return nil, &refusal{decision: d, what: "after install"}
	}
	c.id = after
	msg := fmt.Sprintf("installed and confirmed: %s now reports %s", after.Model, after.FirmwareVersion)
	c.log.WithField("firmware", after.FirmwareVersion).Info(msg)
	result, outcome, codes := ResultInstalled, journal.OutcomeSuccess, []string(nil)
	if deg := c.healthAfter(ctx, u); deg != nil {
		result, outcome, codes = ResultInstalledDegraded, journal.OutcomeDegraded, []string{CodeInstalledDegraded}
		msg = fmt.Sprintf("installed and confirmed (%s now reports %s), but the recorder is not fully back at work: %s. fwagent does not roll back: check the cameras and their network, and the disks (the recorder's storage page), on site", after.Model, after.FirmwareVersion, deg)
		c.log.WithFields(logrus.Fields{"missing_channels": deg.MissingChannels, "worse_disks": deg.WorseDisks}).Warn(msg)
	}
	c.audit(audit.Entry{Event: audit.EventInstallConfirmed, Codes: codes, Message: msg})
	if err := a.dropImage(u.ImagePath); err != nil && !errors.Is(err, os.ErrNotExist) {
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
	c.sendReport(report.Report{ReleaseID: u.ReleaseID, AttemptID: u.AttemptID, Step: string(journal.StepDone), Result: string(ResultInstalled), Codes: codes, Message: msg}) // installed_degraded: the code says so (report servers know installed, failed, refused)
	if err := a.Journal.Finish(journal.Result{Outcome: outcome, Step: journal.StepDone, Codes: codes, Message: msg}); err != nil {
		return nil, failed(classLocal, CodeInternal, err)
	}
	if a.Metrics != nil {
		if result == ResultInstalled {
			a.Metrics.Result(string(ResultInstalled), "")
			a.Metrics.SetLastSuccess(a.now())
		} else {
			a.Metrics.Result(string(result), CodeInstalledDegraded)
		}
	}
	c.out.Result = result
	c.out.Codes = codes
	c.out.Message = msg
	return nil, nil
}
