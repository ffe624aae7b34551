package fleet

import (
	"errors"
	"fmt"
)

// Sentinel errors of package fleet; match with errors.Is.
var (
	// ErrBadSignature: the envelope's signature does not verify with the
	// key it names, or the key is malformed.
	ErrBadSignature = errors.New("bad signature")
	// ErrMalformed is wrapped by every *InvalidError.
	ErrMalformed = errors.New("malformed message")
	// ErrWrongType: an envelope's type is not the one its endpoint takes
	// (a check-in posted as a report, or back). Its error is an
	// *InvalidError too, so errors.Is(err, ErrMalformed) holds as well.
	ErrWrongType = errors.New("wrong message type")
	// ErrNotFound: no such device, release or record.
	ErrNotFound = errors.New("not found")
	// ErrHTTP is wrapped by every *StatusError from the Client.
	ErrHTTP = errors.New("fleet server refused the request")
	// ErrCommitUnknown: a store's COMMIT failed in a way that leaves its
	// outcome unknown (the connection broke or the session ended after it
	// was sent): the transaction may have been stored.
	ErrCommitUnknown = errors.New("the outcome of the commit is unknown")
)

// InvalidError says which field of a message is wrong and why.
type InvalidError struct {
	Field   string // JSON field; empty for the body as a whole
	Problem string // what is wrong, and what to do

	kind error // a finer sentinel it wraps besides ErrMalformed (ErrWrongType), or nil
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return "malformed message: " + e.Problem
	}
	return fmt.Sprintf("malformed message: field %q %s", e.Field, e.Problem)
}

// Unwrap makes errors.Is(err, ErrMalformed) true (and errors.Is(err,
// ErrWrongType) for a wrong envelope type).
func (e *InvalidError) Unwrap() []error {
	if e.kind != nil {
		return []error{ErrMalformed, e.kind}
	}
	return []error{ErrMalformed}
}

// StatusError is a non-2xx answer of the fleet server, with the reason it
// gave. Permanent tells the agent's report queue whether sending the same
// message again can ever succeed: a 4xx other than 408, 409 (the device
// waits for enrolment approval) and 429 cannot.
type StatusError struct {
	Status int
	Reason string // the server's "error" field, or the status text
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("fleet server answered %d: %s", e.Status, e.Reason)
}

// Unwrap makes errors.Is(err, ErrHTTP) true.
func (e *StatusError) Unwrap() error { return ErrHTTP }

// Permanent reports whether the same request can never succeed.
func (e *StatusError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != 408 && e.Status != 409 && e.Status != 429
}
