package agent

import (
	"context"
	"errors"
	"strings"

	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
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

// failure is an error classified where it happened: transient failures are
// retried on a later cycle (bounded attempts), fatal ones stop the update,
// get reported and quarantine the release.
type failure struct {
	class string // journal.ClassTransient or journal.ClassFatal
	codes []string
	err   error
	keep  bool // keep the update as it is: the same step is tried again later
	ends  bool // end the attempt although the failure is transient
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func fatal(code string, err error) error {
	return &failure{class: journal.ClassFatal, codes: []string{code}, err: err}
}

func transient(code string, err error) error {
	return &failure{class: journal.ClassTransient, codes: []string{code}, err: err}
}

// keepUpdate marks err, with its class and codes, as a failure that must not
// end the update in progress (see state.keep).
func keepUpdate(err error) error {
	var f *failure
	if errors.As(err, &f) && f.keep {
		return err
	}
	class, codes := classify(err)
	return &failure{class: class, codes: codes, err: err, keep: true}
}

// halted is the cycle stopped by Agent.BeforeStep, as a crash would stop it.
type halted struct {
	step journal.Step
	err  error
}

func (h *halted) Error() string {
	return "halted before step " + string(h.step) + ": " + h.err.Error()
}
func (h *halted) Unwrap() error { return h.err }

// retryLater is a transient failure with this code that keeps the update
// as it is.
func retryLater(code string, err error) error {
	return &failure{class: journal.ClassTransient, codes: []string{code}, err: err, keep: true}
}

// retryLaterErr is a transient failure that must not end the attempt, even
// during the device steps: the device did not answer, so nothing is known.
// It keeps the codes of err itself (unreachable, rebootTimeout, ...).
func retryLaterErr(err error) error {
	_, codes := classify(err)
	return &failure{class: journal.ClassTransient, codes: codes, err: err, keep: true}
}

// endAttempt is a transient failure that ends the attempt wherever it
// happens: the next attempt starts over (bounded by max_attempts).
func endAttempt(code string, err error) error {
	return &failure{class: journal.ClassTransient, codes: []string{code}, err: err, ends: true}
}

// endsAttempt reports whether err ends the attempt.
func endsAttempt(err error) bool {
	var f *failure
	return errors.As(err, &f) && f.ends
}

// keepsUpdate reports whether err asks to keep the update unchanged.
func keepsUpdate(err error) bool {
	var f *failure
	return errors.As(err, &f) && f.keep
}

// refusal is a policy Decision that said no. It is fatal for the release.
type refusal struct {
	decision verify.Decision
	what     string // "before download", "after download", ...
}

func (r *refusal) Error() string {
	msgs := make([]string, 0, len(r.decision.Reasons))
	for _, reason := range r.decision.Reasons {
		msgs = append(msgs, string(reason.Code)+": "+reason.Message)
	}
	return "refused " + r.what + ": " + strings.Join(msgs, "; ")
}

func decisionCodes(d verify.Decision) []string {
	codes := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		codes = append(codes, string(r.Code))
	}
	return codes
}

// classify says whether err is worth retrying and which codes describe it.
// The class comes from the typed error of the package that failed, never
// from the message.
func classify(err error) (class string, codes []string) {
	var f *failure
	var r *refusal
	var me *manifest.Error
	var fe *fetch.Error
	var de *device.Error
	switch {
	case errors.As(err, &f):
		return f.class, f.codes
	case errors.As(err, &r):
		return journal.ClassFatal, decisionCodes(r.decision)
	case errors.As(err, &me):
		return journal.ClassFatal, []string{string(me.Code)}
	case errors.As(err, &fe):
		if fetch.IsTransient(err) {
			return journal.ClassTransient, []string{string(fetch.CodeOf(err))}
		}
		return journal.ClassFatal, []string{string(fetch.CodeOf(err))}
	case errors.As(err, &de):
		code := de.Code
		if code == "" {
			code = CodeDevice
		}
		if de.Transient {
			return journal.ClassTransient, []string{code}
		}
		return journal.ClassFatal, []string{code}
	case errors.Is(err, device.ErrUnreachable):
		return journal.ClassTransient, []string{"unreachable"}
	}
	return journal.ClassTransient, []string{CodeInternal}
}

// stopped reports whether err only says the context ended.
func stopped(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ctx.Err()))
}
