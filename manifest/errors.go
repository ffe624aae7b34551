package manifest

import (
	"errors"
	"fmt"

	"github.com/fwagent/fwagent/reason"
)

// Code is a stable, machine-readable reason why a manifest was refused.
// Codes are part of the agent's report format: never rename one.
type Code = reason.Code

// Refusal codes returned in *Error.
const (
	// CodeBadSignature: a signature from a trusted key does not verify over
	// the payload (tampered payload or wrong key), and the threshold is not met.
	CodeBadSignature = reason.BadSignature
	// CodeThresholdNotMet: fewer distinct trusted keys signed than required.
	CodeThresholdNotMet = reason.ThresholdNotMet
	// CodeExpired: the manifest's expires time has passed.
	CodeExpired = reason.Expired
	// CodeNotYetValid: the manifest was issued beyond the allowed clock skew in the future.
	CodeNotYetValid = reason.NotYetValid
	// CodeRollback: the serial is below the last accepted one.
	CodeRollback = reason.Rollback
	// CodeEquivocation: the serial equals the last accepted one but the payload differs.
	CodeEquivocation = reason.Equivocation
	// CodeMalformed: the envelope or payload is not well formed.
	CodeMalformed = reason.Malformed
	// CodeTooLarge: the envelope, payload or an image size exceeds a limit.
	CodeTooLarge = reason.TooLarge
	// CodeWrongPayloadType: the envelope's payloadType is not PayloadType.
	CodeWrongPayloadType = reason.WrongPayloadType
	// CodeUnsupportedSchema: the payload's schema number is not one this agent reads.
	CodeUnsupportedSchema = reason.UnsupportedSchema
)

// Error is the one typed error of package manifest: a refusal with a stable
// Code and a sentence saying what is wrong and what to do.
type Error struct {
	Code Code   // stable reason code
	Msg  string // lowercase sentence: what failed and what to do
	Err  error  // underlying cause, if any
}

// Error returns the message, prefixed with the code.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Msg)
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, &manifest.Error{Code: manifest.CodeExpired}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Msg == "" && t.Err == nil
}

// CodeOf returns the Code of the first *Error in err's chain, or "" if none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func newError(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Err: err}
}

// Sentinels for key handling; key errors are operator errors, not refusals.
var (
	// ErrNotEd25519 means a PEM key file holds a key of another algorithm.
	ErrNotEd25519 = errors.New("key is not an Ed25519 key")
	// ErrNoPEM means a key file holds no PEM block of the expected type.
	ErrNoPEM = errors.New("no PEM block found")
)
