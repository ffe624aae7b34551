// Package support owns what helps a person understand a remote agent without
// visiting it: the log file (logrus JSON lines, rotated and expired by
// lumberjack), log queries, the redactor that keeps personal data and secrets
// out of anything that leaves the device, the support bundle, and the status
// endpoint with its Prometheus metrics.
//
// It must not decide anything about updates and must not read the device or
// the network: callers hand it file locations, a status snapshot function and
// metric events. Personal data (IP addresses, emails, user names) leaves the
// device only when the operator asked for it explicitly; secrets (passwords,
// tokens, Authorization values, private keys) never leave it.
package support
