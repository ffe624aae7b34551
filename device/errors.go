package device

import (
	"errors"
	"fmt"

	"github.com/fwagent/fwagent/reason"
)

// Sentinel errors shared by every backend; backends wrap them in *Error.
var (
	// ErrBadCredentials means the device refused the configured credentials.
	// Never retry it: recorders lock accounts after a few failed logins.
	ErrBadCredentials = errors.New("device refused the credentials")
	// ErrLocked means the device has locked the account or this client.
	ErrLocked = errors.New("device has locked the account")
	// ErrUnreachable means the device did not answer.
	ErrUnreachable = errors.New("device unreachable")
	// ErrPendingImage means the device already holds a flashed image that
	// waits for a reboot (ISAPI rebootRequired). A backend never reboots
	// into it on its own: the agent alone knows whether it sent that image.
	ErrPendingImage = errors.New("device holds a flashed image waiting for a reboot")
	// ErrFlashInterrupted means the device stopped flashing before it
	// reported 100% (a power loss, a crash): the image was not taken. A
	// flash is finished only at 100% or when the device reports the new
	// version.
	ErrFlashInterrupted = errors.New("device stopped flashing before 100%")
	// ErrNotSupported means the recorder does not offer what was asked
	// (older firmware answers 404 or ResponseStatus notSupport), or the
	// backend has no way to ask. Callers degrade, they do not fail.
	ErrNotSupported = errors.New("not supported by this recorder")
)

// Error is the typed error of every device operation. Transient errors may be
// retried with backoff; the others must stop the update.
type Error struct {
	Op        string // "identify", "install", "status", "reboot", "wait"
	Code      string // device's sub status code or a short stable word, e.g. "badDevType"
	Transient bool
	Err       error
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("device %s: %s: %v", e.Op, e.Code, e.Err)
	}
	return fmt.Sprintf("device %s: %v", e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsTransient reports whether err is worth retrying later.
func IsTransient(err error) bool {
	var de *Error
	if errors.As(err, &de) {
		return de.Transient
	}
	return errors.Is(err, ErrUnreachable)
}

// Codes the backends put in Error.Code: fwagent's own words and the ISAPI
// subStatusCodes it acts on. The reason registry holds their meaning and
// advice; compare codes with these constants, never with a string.
const (
	CodeBadCredentials     = string(reason.BadCredentials)
	CodeLocked             = string(reason.Locked)
	CodeUnreachable        = string(reason.Unreachable)
	CodeStaleNonce         = string(reason.StaleNonce)
	CodeBadReply           = string(reason.BadReply)
	CodeDeviceBusy         = string(reason.DeviceBusy)
	CodeUpgrading          = string(reason.Upgrading)
	CodeRebootRequired     = string(reason.RebootRequired)
	CodeUploadTimeout      = string(reason.UploadTimeout)
	CodeFlashTimeout       = string(reason.FlashTimeout)
	CodeFlashInterrupted   = string(reason.FlashInterrupted)
	CodeRebootTimeout      = string(reason.RebootTimeout)
	CodeNotSupport         = string(reason.NotSupport)
	CodeBadDevType         = string(reason.BadDevType)
	CodeBadVersion         = string(reason.BadVersion)
	CodeBadLanguage        = string(reason.BadLanguage)
	CodeBadFlash           = string(reason.BadFlash)
	CodeIdentityUnreadable = string(reason.IdentityUnreadable)
	CodeBadIdentity        = string(reason.BadIdentity)
	CodeNotConfigured      = string(reason.NotConfigured)
	CodeBadImage           = string(reason.BadImage)
	CodeBadStatus          = string(reason.BadStatus)
	CodeCommandTimeout     = string(reason.CommandTimeout)
	CodeCommandFailed      = string(reason.CommandFailed)
)
