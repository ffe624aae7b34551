package isapi

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/fwagent/fwagent/device"
)

// StatusError is a <ResponseStatus> error body from the device.
type StatusError struct {
	HTTPStatus    int    // HTTP status of the reply
	StatusCode    int    // 1 OK, 2 Device Busy, 3 Device Error, 4 Invalid Operation, ...
	StatusString  string // e.g. "Invalid Operation"
	SubStatusCode string // e.g. "badDevType"
	RequestURL    string // the path the device says it answered
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("device answered %s with statusCode %d", e.RequestURL, e.StatusCode)
	if e.StatusString != "" {
		s += " (" + e.StatusString + ")"
	}
	if e.SubStatusCode != "" {
		s += ", subStatusCode " + e.SubStatusCode
	}
	if h := statusHints[e.Code()]; h != "" {
		s += ": " + h
	}
	return s
}

// Code is the stable word for the error: the subStatusCode when present,
// otherwise a name for the statusCode.
func (e *StatusError) Code() string {
	if e.SubStatusCode != "" && e.SubStatusCode != "ok" {
		return e.SubStatusCode
	}
	if n, ok := statusNames[e.StatusCode]; ok {
		return n
	}
	return "status" + strconv.Itoa(e.StatusCode)
}

// Transient reports whether the device may accept the same request later.
func (e *StatusError) Transient() bool {
	switch e.Code() {
	case device.CodeDeviceBusy, device.CodeUpgrading:
		return true
	}
	return e.StatusCode == 2
}

// RebootRequired reports whether the device asks for a reboot first.
func (e *StatusError) RebootRequired() bool {
	return e.Code() == device.CodeRebootRequired || e.StatusCode == 7
}

var statusNames = map[int]string{
	1: "ok",
	2: "deviceBusy",
	3: "deviceError",
	4: "invalidOperation",
	5: "invalidXMLFormat",
	6: "invalidXMLContent",
	7: "rebootRequired",
	9: "additionalError",
}

var statusHints = map[string]string{
	device.CodeDeviceBusy:     "the device is busy; try again later",
	device.CodeUpgrading:      "the device is already flashing an image; wait until it finishes",
	device.CodeBadDevType:     "the image is for another device type; do not install it on this device",
	device.CodeBadVersion:     "the device refused this firmware version",
	device.CodeBadLanguage:    "the image's language does not match the device",
	device.CodeBadFlash:       "the device could not write the image; the image is damaged or not for this device",
	device.CodeNotSupport:     "the device does not support this operation",
	device.CodeRebootRequired: "the device holds a flashed image and waits for a reboot into it",
}

// AuthError is a refusal of the configured credentials by the device: a 401
// to a request that carried them. It is never retried.
type AuthError struct {
	Locked      bool // the device says the account or client is locked
	LockSeconds int  // how long the lock lasts, 0 when unknown
	RetriesLeft int  // failed logins left before the device locks, -1 when unknown
	Scheme      string
	NotSent     bool // the device was known to be locked; no login was attempted
}

func (e *AuthError) Error() string {
	switch {
	case e.Locked && e.NotSent && e.LockSeconds > 0:
		return fmt.Sprintf("the device has locked the account (about %d seconds left); fwagent sent no login: wait for the lock to end, then check the credentials", e.LockSeconds)
	case e.Locked && e.NotSent:
		return "the device has locked the account; fwagent sent no login: wait for the lock to end, then check the credentials"
	case e.Locked && e.LockSeconds > 0:
		return fmt.Sprintf("the device locked the account for %d seconds: wait for the lock to end, then check the username and password in the config; fwagent will not retry", e.LockSeconds)
	case e.Locked:
		return "the device locked the account: wait for the lock to end, then check the username and password in the config; fwagent will not retry"
	case e.RetriesLeft >= 0:
		return fmt.Sprintf("the device refused the username or password (%s auth; %d attempts left before it locks the account): fix the credentials in the config; fwagent will not retry", e.Scheme, e.RetriesLeft)
	}
	return fmt.Sprintf("the device refused the username or password (%s auth): fix the credentials in the config; fwagent will not retry", e.Scheme)
}

// Unwrap returns device.ErrLocked or device.ErrBadCredentials.
func (e *AuthError) Unwrap() error {
	if e.Locked {
		return device.ErrLocked
	}
	return device.ErrBadCredentials
}

// Sentinels of this package.
var (
	// ErrBadReply means the device answered with something that is not the
	// expected ISAPI document.
	ErrBadReply = errors.New("unexpected reply from the device")
	// ErrTooLarge means a reply exceeded the size cap.
	ErrTooLarge = errors.New("device reply too large")
	// ErrBasicNotAllowed means the device offers only Basic authentication
	// and the config does not allow it. No credentials were sent.
	// ErrStaleNonce means the device called the digest nonce stale even on
	// the one retry with a fresh nonce. The password was right: it is no
	// refusal of the credentials, and it may be retried later.
	ErrStaleNonce      = errors.New("the device keeps calling the digest nonce stale")
	ErrBasicNotAllowed = errors.New("the device offers only Basic authentication and allow_basic is off: turn it on only over HTTPS or a trusted link")
)

// wrap turns an error of operation op into a *device.Error with the right
// class and code. Already wrapped errors pass through.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *device.Error
	if errors.As(err, &de) {
		return err
	}
	e := &device.Error{Op: op, Err: err}
	var se *StatusError
	var ae *AuthError
	switch {
	case errors.As(err, &ae):
		e.Code = device.CodeBadCredentials
		if ae.Locked {
			e.Code = device.CodeLocked
		}
	case errors.As(err, &se):
		e.Code = se.Code()
		e.Transient = se.Transient()
	case errors.Is(err, device.ErrUnreachable):
		e.Code = device.CodeUnreachable
		e.Transient = true
	case errors.Is(err, ErrStaleNonce):
		e.Code = device.CodeStaleNonce
		e.Transient = true
	case errors.Is(err, ErrBadReply), errors.Is(err, ErrTooLarge):
		e.Code = device.CodeBadReply
	}
	return e
}
