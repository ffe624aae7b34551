package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/cavaliergopher/grab/v3"

	"github.com/fwagent/fwagent/internal/redact"
	"github.com/fwagent/fwagent/reason"
)

// Code is a stable, machine-readable reason for a fetch failure.
type Code = reason.Code

// Failure codes. They are stable: journals, reports and dashboards use them.
const (
	CodeNetwork         = reason.Network         // connection refused, reset, DNS, TLS, cut body
	CodeStatus          = reason.HTTPStatus      // the server answered with an error status
	CodeStalled         = reason.Stalled         // no byte arrived for StallTimeout
	CodeTooLarge        = reason.TooLarge        // a manifest bigger than the cap
	CodeSizeMismatch    = reason.SizeMismatch    // the bytes do not add up to the declared size
	CodeTooLong         = reason.TooLong         // the server sent more bytes than declared
	CodeDigestMismatch  = reason.DigestMismatch  // the SHA-256 of the image is not the declared one
	CodeBadContentRange = reason.BadContentRange // a 206 whose Content-Range is not what was asked
	CodeRangeIgnored    = reason.RangeIgnored    // no longer returned: a 200 answer to a Range request is used from offset 0
	CodeNoSpace         = reason.NoSpace         // not enough free disk space
	CodeLocalFile       = reason.LocalFile       // a file:// URL could not be read
	CodeBadRequest      = reason.BadRequest      // the caller's request is unusable (no URL, bad path)
	CodeCanceled        = reason.Canceled        // the caller's context ended
)

// Sentinel errors, wrapped inside *Error so that errors.Is works.
var (
	ErrStalled         = errors.New("no data received within the stall timeout")
	ErrTooLarge        = errors.New("response larger than the size cap")
	ErrSizeMismatch    = errors.New("size differs from the declared size")
	ErrTooLong         = errors.New("server sent more bytes than declared")
	ErrDigestMismatch  = errors.New("sha-256 differs from the declared digest")
	ErrBadContentRange = errors.New("content-range does not match the requested range")
	ErrRangeIgnored    = errors.New("server ignored the range request")
	ErrNoSpace         = errors.New("not enough free disk space")
)

// Error is the one typed error of package fetch.
type Error struct {
	Op        string // "fetch manifest", "download image", "check free space"
	URL       string // the URL concerned, if any
	Code      Code   // stable reason
	Status    int    // HTTP status, when Code is CodeStatus
	Transient bool   // worth retrying later
	// ImageEvidence: every URL tried served a complete body that
	// contradicts the declared size or SHA-256 (see IsImageEvidence).
	ImageEvidence bool
	Err           error // the cause
}

func (e *Error) Error() string {
	msg := e.Op
	if e.URL != "" {
		msg += " " + redact.URL(e.URL)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + " (" + string(e.Code) + ")"
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// IsTransient reports whether err is worth retrying later. Errors that are
// not *Error are treated as transient only when they are network-level.
func IsTransient(err error) bool {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Transient
	}
	return false
}

// CodeOf returns the Code of the first *Error in err's chain, or "".
func CodeOf(err error) Code {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return ""
}

// statusTransient reports whether an HTTP status may heal by itself.
func statusTransient(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests ||
		(code >= 500 && code != http.StatusNotImplemented)
}

// classify turns a raw error from one download or fetch attempt into an *Error.
func classify(op, url string, err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		if fe.URL == "" {
			fe.URL = url
		}
		return fe
	}
	e := &Error{Op: op, URL: url, Err: err}
	var sc grab.StatusCodeError
	switch {
	case errors.Is(err, ErrStalled):
		e.Code, e.Transient = CodeStalled, true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Code = CodeCanceled
	case errors.As(err, &sc):
		e.Code, e.Status, e.Transient = CodeStatus, int(sc), statusTransient(int(sc))
		e.Err = fmt.Errorf("server answered %d %s", int(sc), http.StatusText(int(sc)))
	case errors.Is(err, grab.ErrBadLength):
		e.Code = CodeSizeMismatch
		e.Err = fmt.Errorf("%w: the server's content length does not match the release", ErrSizeMismatch)
	default:
		e.Code, e.Transient = CodeNetwork, true
	}
	return e
}

// IsImageEvidence reports whether err is evidence about the image as served
// rather than about one server: every URL served a complete body that
// contradicts the declared size or SHA-256. It is still not proof against
// the release (a proxy may rewrite every mirror): the agent counts it as a
// failed attempt; only proven bytes refused by verify quarantine at once. A lying Content-Range, an
// ignored Range, an error status or a cut body is a server's fault, never
// evidence.
func IsImageEvidence(err error) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.ImageEvidence
}

// contradictsImage reports whether e says a complete body contradicts the
// declared size or digest.
func contradictsImage(e *Error) bool {
	return e.Code == CodeDigestMismatch || e.Code == CodeSizeMismatch
}
