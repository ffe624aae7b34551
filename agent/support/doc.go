// Package support owns what helps a person understand a remote agent without
// visiting it: the log file (logrus JSON lines, rotated by lumberjack and
// expired by the logger's own clock), log queries, the support bundle, and
// the status endpoint with its Prometheus metrics. The redaction rules it
// applies live in internal/redact.
//
// It must not decide anything about updates and must not read the device or
// the network: callers hand it file locations, a status snapshot function and
// metric events. Personal data (IP and MAC addresses, device IDs and names,
// emails, user names) leaves the device only when the operator asked for it
// explicitly; secrets (passwords, tokens, Authorization values, private keys)
// never leave it and never enter the log. docs/privacy.md says what a bundle
// holds.
package support
