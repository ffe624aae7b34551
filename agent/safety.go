package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/verify"
)

// unresponsiveCodes are the device codes that mean the recorder stopped
// answering, as opposed to answering with an error.
var unresponsiveCodes = []string{"unreachable", "flashTimeout", "rebootTimeout", "uploadTimeout"}

// protectedUnresponsive reports whether err means that a recorder of the
// protected model stopped answering after an image was sent to it: during
// the install once the upload began, or in the reboot and confirm steps
// (also when a later cycle settles them). Such a recorder may be damaged;
// its failure carries CodeProtectedUnresponsive and advice of its own
// rather than a generic timeout.
func (c *cycle) protectedUnresponsive(err error) bool {
	if c.mode == ModeCheck {
		return false
	}
	u := c.current()
	if u == nil {
		return false
	}
	switch {
	case u.Step == journal.StepReboot || u.Step == journal.StepConfirm:
	case u.Step == journal.StepInstall && c.sent:
	default:
		return false
	}
	var before device.Identity
	if len(u.Before) > 0 {
		_ = json.Unmarshal(u.Before, &before)
	}
	if !verify.IsProtectedModel(c.id.Model) && !verify.IsProtectedModel(before.Model) {
		return false
	}
	if errors.Is(err, device.ErrUnreachable) {
		return true
	}
	var de *device.Error
	return errors.As(err, &de) && slices.Contains(unresponsiveCodes, de.Code)
}

// protectedUnresponsiveError puts the safety advice in front of err.
func protectedUnresponsiveError(id device.Identity, err error) error {
	return fmt.Errorf("safety: the %s recorder (serial %s) stopped answering after fwagent sent it firmware, and this model is permanently damaged by the wrong firmware: "+
		"do not power-cycle it repeatedly and do not try other images on it; contact the vendor's support with this report (while it does not answer, fwagent only asks it what it runs and sends it nothing): %w",
		verify.ProtectedModel, id.Serial, err)
}
