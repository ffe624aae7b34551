package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/statefile"
)

// stateIdentify reads the device's identity (-> stateFetch). It changes
// nothing, so it is not a journal step: its failures say nothing about the
// release being installed and never end or quarantine an update in
// progress, which waits in the journal for a cycle where the device
// answers again.
var stateIdentify = &state{
	name:    string(journal.StepIdentify),
	run:     (*cycle).identify,
	retries: "each device request by the backend (device.isapi.retry_max; never a refused login)",
	failures: failureTable{
		classUnavailable: nextCycle,
		classDevice:      nextCycle, // refused credentials: the daemon stops sending them (credentials_refused)
		classLocal:       nextCycle,
	},
}

// identify reads the device identity.
func (c *cycle) identify(ctx context.Context) (*state, error) {
	var id device.Identity
	var err error
	if p := c.pre; p != nil && (p.err != nil || !(c.onDevice || c.settled || c.seen != nil)) {
		// The site asked the recorder a moment ago and nothing has touched
		// it since: no second request (nor a second refused login).
		c.pre = nil
		id, err = p.id, p.err
	} else {
		id, err = c.a.Device.Identify(ctx)
	}
	if err != nil {
		return nil, err
	}
	if c.mode != ModeCheck {
		c.a.noteCredentials(nil, true)
	}
	if c.a.IdentityClaim != nil {
		if err := c.a.IdentityClaim(c.a.DeviceName(), id); err != nil {
			return nil, failed(classDevice, CodeDuplicateRecorder, err)
		}
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
	if err := statefile.Write(path, b, 0o600); err != nil {
		a.Log.WithError(err).Warn("could not keep the device identity for support bundles")
	}
}
