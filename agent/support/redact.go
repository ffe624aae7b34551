package support

import "github.com/fwagent/fwagent/internal/redact"

// Markers that replace redacted text (see package internal/redact, which
// owns the rules).
const (
	MarkerIP         = redact.MarkerIP
	MarkerEmail      = redact.MarkerEmail
	MarkerUser       = redact.MarkerUser
	MarkerSecret     = redact.MarkerSecret
	MarkerPrivateKey = redact.MarkerPrivateKey
	MarkerMAC        = redact.MarkerMAC
	MarkerDeviceID   = redact.MarkerDeviceID
	MarkerName       = redact.MarkerName
)

// Redact returns s with every secret replaced by a marker and, unless
// includePersonal is set, every piece of personal data too: see
// redact.Redact for the rules. It is idempotent.
func Redact(s string, includePersonal bool) string { return redact.Redact(s, includePersonal) }

// RedactBytes is Redact for byte slices.
func RedactBytes(b []byte, includePersonal bool) []byte {
	return redact.RedactBytes(b, includePersonal)
}
