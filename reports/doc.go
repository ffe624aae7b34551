// Package reports is the integrator's side of the agents' reports: the
// report schema and its validation (the rules every report keeps are the
// fleet protocol's, fleet.CheckReportFields; this package adds what a
// reports file allows besides), a tolerant reader for reports files
// (JSON Lines, one Record a line: the file the old `fwctl reports serve`
// wrote, and the fleet server's export of a release's reports), and the
// per-stage rollout statistics that `fwctl rollout status` prints,
// `fwctl rollout advance` checks and the fleet server shows and
// auto-pauses on.
//
// It owns the reports file format and the rules that turn reports into
// counts: which report of a device counts (its latest for the release),
// which stage a device belongs to and how the failure rate is computed. It
// must not change manifests (fwctl does that through package manifest) and
// receives nothing over the network: the fleet server (package
// fleet/server) does.
package reports
