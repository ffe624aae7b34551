package agent

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// stateResume looks at the journal first: an update interrupted during
// install, reboot or confirm is settled before anything else (->
// stateSettle); everything else starts at stateIdentify.
var stateResume = &state{
	name: "resume",
	run:  (*cycle).resume,
}

// stateSettle finishes an update interrupted during install, reboot or
// confirm (-> stateReboot, stateConfirm). It never uploads blindly: it asks
// the device what it runs first. A device that does not answer says
// nothing: the update waits for the next cycle.
var stateSettle = &state{
	name:    "settle",
	run:     (*cycle).settle,
	sent:    true,
	retries: "waits for a restarting device (reboot_timeout) and for a flashing one (flash_timeout)",
	failures: failureTable{
		classUnavailable: nextCycle,
		classInterrupted: newAttempt,
		classBroken:      quarantine,
	},
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
		return stateSettle, nil
	}
	return stateIdentify, nil
}

// settle finishes an update interrupted during install, reboot or confirm.
// It never uploads blindly: it asks the device what it runs first.
func (c *cycle) settle(ctx context.Context) (*state, error) {
	u := c.current()
	var rel manifest.Release
	if err := json.Unmarshal(u.Release, &rel); err != nil {
		return nil, failed(classBroken, CodeInternal, fmt.Errorf("the journal's release record is unreadable (%v): the update cannot be settled", err))
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
		return nil, reclassed(classUnavailable, fmt.Errorf("settle the interrupted install: %w", err))
	}
	if runs(id, target) {
		// Confirm what the device just said, through the confirm step.
		c.seen = &id
		return stateConfirm, nil
	}
	status, err := c.a.Device.InstallStatus(ctx)
	if err != nil {
		return nil, reclassed(classUnavailable, fmt.Errorf("ask the device whether it is flashing: %w", err))
	}
	if status.Upgrading {
		c.log.WithField("percent", status.Percent).Info("the device is still flashing: waiting for it")
		if err := c.waitFlashing(ctx); err != nil {
			return nil, reclassed(classUnavailable, fmt.Errorf("wait for the device to finish flashing: %w", err))
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
	return nil, failed(classInterrupted, CodeInstallInterrupted, fmt.Errorf("the install was interrupted before the device took the image (it still runs %s and is not flashing): recorded as a failed attempt; the image is proven again before another try", id.FirmwareVersion))
}

// settledReboot goes on to the reboot after settle saw a finished flash. A
// confirm that then finds the old firmware ends the attempt (the upload had
// not been taken) instead of quarantining the release.
func (c *cycle) settledReboot() (*state, error) {
	c.settled = true
	return stateReboot, nil
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

// runs reports whether the device runs exactly the target version.
func runs(id device.Identity, target verify.Release) bool {
	have, err := verify.ParseVersion(id.FirmwareVersion)
	if err != nil {
		return false
	}
	want, err := verify.ParseVersion(target.Version)
	return err == nil && have.Compare(want) == 0
}
