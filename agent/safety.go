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
var unresponsiveCodes = []string{device.CodeUnreachable, device.CodeFlashTimeout, device.CodeRebootTimeout, device.CodeUploadTimeout}

// protectedUnresponsive reports whether err means that a recorder of the
// protected model stopped answering after it took an image: in the install
// step once it flashed (flashTimeout, or no answer after it reported
// flashing, in this cycle or, per the journal, before the agent restarted),
// or in the reboot and confirm steps (also when a later cycle settles
// them). Such a recorder may be damaged; its failure carries
// CodeProtectedUnresponsive and advice of its own rather than a generic
// timeout. An upload cut before the device flashed is not such a case: the
// device answered, or nothing says it took the image.
func (c *cycle) protectedUnresponsive(err error) bool {
	if c.mode == ModeCheck {
		return false
	}
	u := c.current()
	if u == nil || (u.Step != journal.StepInstall && u.Step != journal.StepReboot && u.Step != journal.StepConfirm) {
		return false
	}
	var before device.Identity
	if len(u.Before) > 0 {
		_ = json.Unmarshal(u.Before, &before)
	}
	if !verify.IsProtectedModel(c.id.Model) && !verify.IsProtectedModel(before.Model) {
		return false
	}
	var de *device.Error
	code := ""
	if errors.As(err, &de) {
		code = de.Code
	}
	silent := errors.Is(err, device.ErrUnreachable) || slices.Contains(unresponsiveCodes, code)
	if u.Step == journal.StepInstall {
		return code == device.CodeFlashTimeout || ((c.flashing || u.Flashing) && silent)
	}
	return silent
}

// protectedUnresponsiveError puts the safety advice in front of err.
func protectedUnresponsiveError(id device.Identity, err error) error {
	return fmt.Errorf("safety: the %s recorder (serial %s) stopped answering after fwagent sent it firmware; it may be damaged (this model does not survive wrong firmware): "+
		"do not power-cycle it repeatedly and do not try other images on it; contact the vendor's support with this report (while it does not answer, fwagent only asks it what it runs and sends it nothing): %w",
		verify.ProtectedModel, id.Serial, err)
}
