// Package fetch moves bytes from the network (or a local folder) to the agent:
// signed manifests through conditional, size-capped requests, and firmware
// images through resumable, mirror-aware, rate-limited downloads that hash
// every byte as it arrives.
//
// It owns transport concerns only: retries, timeouts, proxies, HTTP ranges,
// stalls, partial files and the proof that the bytes on disk have the declared
// size and SHA-256. It must not parse or trust a manifest, judge an image
// against the safety policy, or touch the journal: the caller (package agent)
// does that with what fetch returns.
//
// Every failure is an *Error with a stable Code and a Transient flag: transient
// failures (network errors, 5xx, stalls, cut connections) are worth retrying
// later; the others (404, too large, digest or size mismatch, a server that
// lies about ranges) will not heal by themselves for that URL. None of them
// is evidence about the image itself unless every URL served a complete body
// that contradicts the signed size or SHA-256 (IsImageEvidence): a bad
// mirror or proxy is the likely cause of one contradicting body.
//
// The Downloader is the one layer that retries image GETs (RetryMax per URL,
// its client never retries); a manifest client built by NewHTTPClient is the
// one layer that retries manifest requests (docs/reference/retries.md).
package fetch
