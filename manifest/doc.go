// Package manifest owns the signed manifest: its keys, its DSSE envelope, its
// strict payload format, its verification (signature threshold, freshness,
// rollback and equivocation protection) and the staged-rollout eligibility
// rule carried by each release.
//
// The package is pure: it does no network I/O, keeps no daemon state and never
// decides whether an image may go on a device; that is the job of package
// verify, which receives a release through Release.Target. The caller persists
// the last accepted serial and payload digest and passes them back in
// VerifyOptions.
package manifest
