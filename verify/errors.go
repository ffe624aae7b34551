package verify

import "errors"

// Sentinels for the parsers; errors returned by this package wrap them.
var (
	// ErrVersion means a version string could not be parsed.
	ErrVersion = errors.New("invalid firmware version")
	// ErrVariant means a variant string is neither custom nor standard.
	ErrVariant = errors.New("invalid firmware variant")
)

// Sentinels for image formats; errors about an image's structure wrap them.
var (
	// ErrZip means the file is a zip archive, almost always the vendor's
	// download package rather than the firmware image inside it.
	ErrZip = errors.New("the file is a zip archive, the vendor's download package, not a firmware image: extract digicap.dav from it and use that file")
	// ErrEncrypted means the image is an HK20/HK30 encrypted container.
	ErrEncrypted = errors.New("the image is an encrypted container whose structure cannot be checked: use an unencrypted digicap.dav for this device")
	// ErrMalformed means the image claims to be (or should be) a digicap.dav
	// image but its structure is wrong: truncated, bad magic, bad checksums.
	ErrMalformed = errors.New("malformed digicap.dav image")
)
