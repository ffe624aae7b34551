package verify

import (
	"errors"
	"strings"

	"github.com/fwagent/fwagent/reason"
)

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

// Code is a stable, machine-readable reason for a refusal. Codes are never
// renamed: reports, journals and dashboards key on them.
type Code = reason.Code

// The reason codes of Decide, DecideImage and ConfirmInstall.
const (
	// CodeModelMismatch: the device's model is not among the release's models.
	CodeModelMismatch = reason.ModelMismatch
	// CodeStandardFirmwareForbidden: a non-custom release for
	// iDS-9632NXI-I8/16S (built-in rule).
	CodeStandardFirmwareForbidden = reason.StandardFirmwareForbidden
	// CodeCustomVersionForbidden: a custom release for iDS-9632NXI-I8/16S
	// whose version is not written exactly 4.1.25 (or V4.1.25): 4.1.26,
	// 4.1.25.0, 04.01.25 and " 4.1.25" are all refused (built-in rule).
	CodeCustomVersionForbidden = reason.CustomVersionForbidden
	// CodeProtectedNeedsSecondProof: a custom 4.1.25 release for
	// iDS-9632NXI-I8/16S rests on one proof only. Besides its declared
	// variant and version it needs a second, independent one: its SHA-256
	// pinned in the policy for that model, or valid signatures by at least
	// two distinct trusted keys (whatever the manifest threshold says).
	// Advice: pin the vendor's digest in policy.pins, or have a second
	// integrator co-sign the manifest with `fwctl sign` (built-in rule).
	CodeProtectedNeedsSecondProof = reason.ProtectedNeedsSecondProof
	// CodeVersionUnparseable: a version (installed, release or requires
	// bound) cannot be read.
	CodeVersionUnparseable = reason.VersionUnparseable
	// CodeVariantUnknown: the release's variant is neither custom nor standard.
	CodeVariantUnknown = reason.VariantUnknown
	// CodeReleaseIncomplete: the release lacks models, size or a SHA-256.
	CodeReleaseIncomplete = reason.ReleaseIncomplete
	// CodeRequiresNotMet: the installed version is outside the release's
	// requires range.
	CodeRequiresNotMet = reason.RequiresNotMet
	// CodeDowngradeForbidden: the release is older than the installed version.
	CodeDowngradeForbidden = reason.DowngradeForbidden
	// CodeReinstallForbidden: the release is the installed version.
	CodeReinstallForbidden = reason.ReinstallForbidden
	// CodeSizeMismatch: the image's size differs from the release's.
	CodeSizeMismatch = reason.SizeMismatch
	// CodeDigestMismatch: the image's SHA-256 differs from the release's.
	CodeDigestMismatch = reason.DigestMismatch
	// CodeDigestNotPinned: the operator pinned digests for the model and the
	// release's (before the download) or the image's (after it) is not
	// among them.
	CodeDigestNotPinned = reason.DigestNotPinned
	// CodeImageIsZip: the image is the vendor's zip package.
	CodeImageIsZip = reason.ImageIsZip
	// CodeImageEncrypted: the image is an HK20/HK30 encrypted container.
	CodeImageEncrypted = reason.ImageEncrypted
	// CodeImageMalformed: the image is not a valid digicap.dav.
	CodeImageMalformed = reason.ImageMalformed
	// CodePostInstallMismatch: after the install the device reports another
	// model or another version than the release's.
	CodePostInstallMismatch = reason.PostInstallMismatch
)

// Codes lists every reason code, in documentation order.
func Codes() []Code {
	return []Code{CodeModelMismatch, CodeStandardFirmwareForbidden, CodeCustomVersionForbidden,
		CodeProtectedNeedsSecondProof, CodeVersionUnparseable, CodeVariantUnknown, CodeReleaseIncomplete, CodeRequiresNotMet,
		CodeDowngradeForbidden, CodeReinstallForbidden, CodeSizeMismatch, CodeDigestMismatch,
		CodeDigestNotPinned, CodeImageIsZip, CodeImageEncrypted, CodeImageMalformed, CodePostInstallMismatch}
}

// ErrRefused is matched (errors.Is) by every *RefusalError.
var ErrRefused = errors.New("refused by the firmware safety policy")

// RefusalError is the error form of a refusing Decision.
type RefusalError struct {
	Reasons []Reason
}

// Error lists every reason as "code: sentence".
func (e *RefusalError) Error() string {
	var sb strings.Builder
	sb.WriteString(ErrRefused.Error())
	for i, r := range e.Reasons {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString("; ")
		}
		sb.WriteString(string(r.Code))
		sb.WriteString(": ")
		sb.WriteString(r.Message)
	}
	return sb.String()
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusalError) Is(target error) bool { return target == ErrRefused }
