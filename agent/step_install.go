package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/verify"
)

// stateInstall re-proves the staged image against a fresh identity (->
// stateFlash). Nothing has reached the device yet: a failure here keeps the
// update for the next window and counts no attempt.
var stateInstall = &state{
	name:    string(journal.StepInstall),
	journal: journal.StepInstall,
	run:     (*cycle).install,
	device:  true,
	failures: failureTable{
		classUnavailable: nextCycle,
		classDevice:      nextCycle,
		classChanged:     nextCycle, // a replaced recorder starts over; a changed image is downloaded again
		classRefused:     quarantine,
		classLocal:       nextCycle,
		classBroken:      quarantine,
	},
}

// stateFlash sends the proven image to the device and waits for the flash
// to end (-> stateReboot). It continues the journal's install step. Once
// bytes went out, a failure ends the attempt: the next one proves the image
// again before another try.
var stateFlash = &state{
	name:    "flash",
	run:     (*cycle).flash,
	device:  true,
	sent:    true,
	retries: "none: an upload is never repeated within a cycle",
	failures: failureTable{
		classUnavailable: newAttempt,
		classInterrupted: newAttempt,
		classLocal:       newAttempt,
		classDevice:      quarantine,
		classBroken:      quarantine,
	},
}

// install proves the staged image once more against a fresh identity.
func (c *cycle) install(ctx context.Context) (*state, error) {
	a := c.a
	u := c.current()
	// Nothing has reached the device yet: a failure here keeps the update
	// for the next window and counts no attempt.
	id, err := a.Device.Identify(ctx)
	if err != nil {
		return nil, err
	}
	if !verify.SameModel(id.Model, c.id.Model) || id.Serial != c.id.Serial {
		err := fmt.Errorf("the device changed since the decision (was %s %s, now %s %s): starting over on the next cycle", c.id.Model, c.id.Serial, id.Model, id.Serial)
		c.abandon(u, err.Error())
		return nil, failed(classChanged, CodeDeviceChanged, err)
	}
	c.id = id
	// The image's read lock (a site's shared cache) is held from this proof
	// through the end of the upload (flash), so that no other recorder
	// writes or removes the file in between.
	c.holdImage(u.SHA256)
	facts, err := verify.InspectFile(u.ImagePath)
	if err == nil && (facts.Size != u.Size || facts.SHA256 != u.SHA256) {
		err = fmt.Errorf("it is %d bytes with SHA-256 %s, not the %d bytes with SHA-256 %s that were verified", facts.Size, facts.SHA256, u.Size, u.SHA256)
	}
	if err != nil {
		c.releaseImage() // downloadAgain takes the write lock
		return nil, c.downloadAgain(fmt.Errorf("the staged image changed on disk since it was verified (%v): it is downloaded and proven again", err))
	}
	if d := verify.DecideImage(id, c.release.Target(), facts, a.policy(), c.verified.Evidence()); !d.Allowed {
		return nil, &refusal{decision: d, what: "immediately before install"}
	}
	return stateFlash, nil
}

// flash hands the proven image to the device and follows the flash.
func (c *cycle) flash(ctx context.Context) (*state, error) {
	a := c.a
	defer c.releaseImage() // held since install proved the image
	u := c.current()
	id := c.id
	c.audit(audit.Entry{Event: audit.EventInstallStarted, Message: fmt.Sprintf("%s %s onto %s (%s)", c.release.Variant, c.release.Version, id.Model, id.FirmwareVersion)})
	c.log.WithFields(logrus.Fields{"from": id.FirmwareVersion, "to": c.release.Version}).Info("install started")
	last := int64(-1)
	err := a.Device.Install(ctx, u.ImagePath, func(p device.InstallProgress) {
		if p.Phase == "flash" && !c.flashing {
			c.flashing = true // the device said it is writing the image
			if err := a.Journal.Update(func(s *journal.State) error {
				if s.Current != nil {
					s.Current.Flashing = true
				}
				return nil
			}); err != nil {
				c.log.WithError(err).Warn("could not record in the journal that the device is flashing")
			}
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
		return nil, failed(classInterrupted, CodePendingImage, err)
	}
	if err != nil {
		return nil, err
	}
	return stateReboot, nil
}
