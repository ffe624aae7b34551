package agent

import (
	"context"
	"errors"
)

// Codes the agent itself gives to failures and refusals (verify, manifest,
// fetch and device codes pass through unchanged).
const (
	CodeTermsNotAccepted   = "terms_not_accepted"
	CodeCrashLoop          = "crash_loop"
	CodeInstallInterrupted = "install_interrupted"
	CodeDeviceChanged      = "device_changed"
	CodeNoSpace            = "no_space"
	CodeDevice             = "device_error"
	CodeInternal           = "internal_error"
	CodePendingImage       = "pending_image"        // the device waits to reboot into an image this attempt did not send
	CodeStagedImageChanged = "staged_image_changed" // the verified image changed on disk; it is downloaded again
	// CodeProtectedUnresponsive: an iDS-9632NXI-I8/16S stopped answering
	// after its image was sent (flash, reboot or confirm timed out). Advice:
	// contact the vendor's support; do not power-cycle it repeatedly and do
	// not try other images on it.
	CodeProtectedUnresponsive = "protected_model_unresponsive"

	// Why a cycle found nothing to do.
	CodeNoRelease     = "no_release_for_model" // no release names the device's model
	CodeUpToDate      = "up_to_date"           // the device runs the newest release offered
	CodeQuarantined   = "quarantined"          // the release failed before; waiting for a higher serial
	CodeNotInRollout  = "not_in_rollout"       // the rollout does not admit this device yet
	CodeRolloutPaused = "rollout_paused"       // the integrator paused the release's rollout
)

// stopped reports whether err only says the context ended.
func stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ctx.Err()))
}
