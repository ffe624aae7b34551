package agent

import (
	"time"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// Result is how a cycle ended, in words that map onto exit codes.
type Result string

// Cycle results.
const (
	ResultInstalled Result = "installed"      // installed and confirmed (exit 0)
	ResultAvailable Result = "available"      // check: an allowed update is available (exit 0)
	ResultWaiting   Result = "waiting_window" // verified; the install waits for a maintenance window (exit 3)
	ResultPaused    Result = "paused"         // the release's rollout is paused (exit 3)
	ResultNothing   Result = "nothing"        // nothing to do (exit 3)
	ResultRefused   Result = "refused"        // refused by policy or local config (exit 4)
	ResultFailed    Result = "failed"         // an error (exit 1; 5 when Step is install, reboot or confirm)
	ResultStopped   Result = "stopped"        // the context ended at a safe point; the journal resumes it
	// ResultDeferred: the checks before the upload made the install wait
	// (a disk formatting, an upgrade running, a required backup failing);
	// the next cycle tries again and no attempt is counted (exit 3).
	ResultDeferred Result = "deferred"
	// ResultInstalledDegraded: installed and confirmed, but channels or
	// disks did not return to the baseline within confirm.health_timeout
	// (exit 1: someone must look at the recorder).
	ResultInstalledDegraded Result = "installed_degraded"
)

// Mode says how far a cycle may go.
type Mode int

// Cycle modes.
const (
	// ModeCheck identifies, fetches, verifies and decides, and changes nothing.
	ModeCheck Mode = iota
	// ModeUpdate runs the whole cycle; installs wait for a maintenance window.
	ModeUpdate
	// ModeUpdateNow runs the whole cycle and installs outside the windows.
	ModeUpdateNow
)

// Candidate is one release of the manifest that names this device's model,
// with everything the agent decided about it.
type Candidate struct {
	Release     manifest.Release      `json:"release"`
	Decision    verify.Decision       `json:"decision"`
	Eligibility *manifest.Eligibility `json:"eligibility,omitempty"`
	Quarantined bool                  `json:"quarantined,omitempty"`
	Chosen      bool                  `json:"chosen,omitempty"`
}

// Outcome is what one cycle found and did.
type Outcome struct {
	Result     Result           `json:"result"`
	Message    string           `json:"message"`
	Codes      []string         `json:"codes,omitempty"`
	Identity   *device.Identity `json:"identity,omitempty"`
	Serial     int64            `json:"manifest_serial,omitempty"`
	Unchanged  bool             `json:"manifest_unchanged,omitempty"`
	Candidates []Candidate      `json:"candidates,omitempty"`
	Release    string           `json:"release,omitempty"`
	Attempt    string           `json:"attempt,omitempty"`
	// Step is the journal step an update attempt was in when the cycle
	// ended (install, reboot, confirm, ...); empty when no update was in
	// progress.
	Step      string `json:"step,omitempty"`
	Transient bool   `json:"transient,omitempty"` // a failure worth retrying soon
	// InstallFailed marks a failure after the image reached the device
	// (flash, reboot, confirm, settle): a failed install, which the
	// commands exit with a code of its own. A failure of the checks just
	// before the upload is not one: nothing was sent.
	InstallFailed bool      `json:"install_failed,omitempty"`
	NextWindow    time.Time `json:"next_window,omitzero"`
	Err           error     `json:"-"`
	Finished      time.Time `json:"finished"`
}
