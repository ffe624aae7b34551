package agent

import (
	"context"
	"errors"

	"github.com/fwagent/fwagent/reason"
)

// Codes the agent itself gives to failures and refusals (verify, manifest,
// fetch and device codes pass through unchanged).
const (
	CodeTermsNotAccepted   = string(reason.TermsNotAccepted)
	CodeCrashLoop          = string(reason.CrashLoop)
	CodeInstallInterrupted = string(reason.InstallInterrupted)
	CodeDeviceChanged      = string(reason.DeviceChanged)
	CodeNoSpace            = string(reason.NoSpace)
	CodeDevice             = string(reason.DeviceError)
	CodeInternal           = string(reason.Internal)
	CodePendingImage       = string(reason.PendingImage)       // the device waits to reboot into an image this attempt did not send
	CodeStagedImageChanged = string(reason.StagedImageChanged) // the verified image changed on disk; it is downloaded again
	// CodeProtectedUnresponsive: an iDS-9632NXI-I8/16S stopped answering
	// after its image was sent (flash, reboot or confirm timed out). Advice:
	// contact the vendor's support; do not power-cycle it repeatedly and do
	// not try other images on it.
	CodeProtectedUnresponsive = string(reason.ProtectedUnresponsive)

	// Why a cycle found nothing to do.
	CodeNoRelease     = string(reason.NoRelease)     // no release names the device's model
	CodeUpToDate      = string(reason.UpToDate)      // the device runs the newest release offered
	CodeQuarantined   = string(reason.Quarantined)   // the release failed before; waiting for a higher serial
	CodeNotInRollout  = string(reason.NotInRollout)  // the rollout does not admit this device yet
	CodeRolloutPaused = string(reason.RolloutPaused) // the integrator paused the release's rollout
)

// stopped reports whether err only says the context ended.
func stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ctx.Err()))
}
