// Package reports is the integrator's side of the agents' reports: a small
// HTTP server that receives them and appends them durably to a JSON Lines
// file, a tolerant reader for that file, and the per-stage rollout
// statistics that `fwctl rollout status` prints and `fwctl rollout advance`
// checks.
//
// It owns the reports file format (one Record a line) and the rules that
// turn reports into counts: which report of a device counts (its latest for
// the release), which stage a device belongs to and how the failure rate is
// computed. It must not change manifests (fwctl does that through package
// manifest) and never answers 2xx before a report is on disk.
package reports
