package verify

import "errors"

// Sentinels for the parsers; errors returned by this package wrap them.
var (
	// ErrVersion means a version string could not be parsed.
	ErrVersion = errors.New("invalid firmware version")
	// ErrVariant means a variant string is neither custom nor standard.
	ErrVariant = errors.New("invalid firmware variant")
)
