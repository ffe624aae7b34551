// Package verify decides whether a firmware image may go onto a recorder.
//
// It owns version parsing and comparison, model comparison, the digicap.dav
// structure checks, the one-pass image inspection (size, SHA-256, digicap
// entry checksums) and the safety policy with its stable reason codes,
// including the built-in rule that model iDS-9632NXI-I8/16S only ever
// receives the custom firmware written exactly 4.1.25, and only with a
// second proof besides its signed declaration (its digest pinned by the
// operator, or two distinct trusted signers: Evidence).
//
// The package is pure: it must not touch the network, the daemon's state or
// the device. Callers feed it identities, releases and image bytes; it
// returns facts and decisions.
package verify
