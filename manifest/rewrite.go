package manifest

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Edit changes a parsed manifest in place; Resign and Rewrite call it.
type Edit func(m *Manifest) error

// RewriteOptions control how Rewrite and Resign produce the next manifest.
type RewriteOptions struct {
	Now     time.Time // becomes the new issued time (UTC, whole seconds)
	Expires time.Time // new expiry; zero keeps the old one
	ParseOptions
}

// Rewrite parses payload strictly, applies edit, bumps the serial by one,
// sets issued to opt.Now (and expires to opt.Expires when set), validates
// the result and returns the new payload. It is the one place where
// fwctl's rollout commands (set, pause, resume, advance) change a manifest.
func Rewrite(payload []byte, opt RewriteOptions, edit Edit) ([]byte, *Manifest, error) {
	m, err := ParsePayload(payload, opt.ParseOptions)
	if err != nil {
		return nil, nil, err
	}
	if edit != nil {
		if err := edit(m); err != nil {
			return nil, nil, err
		}
	}
	if m.Serial == math.MaxInt64 {
		return nil, nil, newError(CodeMalformed, nil, "serial %d cannot grow any further", m.Serial)
	}
	m.Serial++
	m.Issued = opt.Now.UTC().Truncate(time.Second)
	if !opt.Expires.IsZero() {
		m.Expires = opt.Expires.UTC()
	}
	if !m.Expires.After(m.Issued) {
		return nil, nil, newError(CodeExpired, nil, "the manifest expires at %s, not after the new issued time %s: give a new expiry (--expires-in)", stamp(m.Expires), stamp(m.Issued))
	}
	out, err := m.Marshal(opt.ParseOptions)
	if err != nil {
		return nil, nil, err
	}
	return out, m, nil
}

// Resign verifies an envelope against trust, rewrites its payload with
// Rewrite and returns a new envelope signed by keys only: the old
// signatures covered the old payload and are dropped. Further signers add
// theirs with AddSignatures.
//
// The envelope must pass Verify with every check but expiry (an expired
// manifest may be renewed; there is no last serial to compare with):
// re-signing an envelope whose signatures do not verify would vouch for
// whatever someone wrote into the published file. Such an envelope is
// refused with the *Error of Verify, its Code kept (bad_signature,
// threshold_not_met, malformed, ...).
func Resign(envelope []byte, trust Trust, keys []ed25519.PrivateKey, opt RewriteOptions, edit Edit) ([]byte, *Manifest, error) {
	if len(keys) == 0 {
		return nil, nil, errors.New("no signing key given: pass at least one private key")
	}
	v, err := VerifyForResign(envelope, trust, opt.Now, opt.ParseOptions)
	if err != nil {
		return nil, nil, err
	}
	out, m, err := Rewrite(v.Payload, opt, edit)
	if err != nil {
		return nil, nil, err
	}
	signed, err := Sign(out, keys...)
	if err != nil {
		return nil, nil, err
	}
	return signed, m, nil
}

// ResignSkew is how far in the future an envelope's issued time may be
// when VerifyForResign checks it (the signer's clock may run ahead).
const ResignSkew = 5 * time.Minute

// VerifyForResign runs Verify on an envelope that is about to be signed
// again (by Resign, or by a co-signer adding a signature): every check
// but expiry, at now with ResignSkew. A refusal keeps the Code of Verify
// and says not to sign the envelope.
func VerifyForResign(envelope []byte, trust Trust, now time.Time, popt ParseOptions) (*Verified, error) {
	if n := trust.normalized(); n.Threshold < 1 || len(n.Keys) < n.Threshold {
		return nil, newError(CodeThresholdNotMet, nil, "%d public key(s) can never meet threshold %d: give at least %d distinct public keys, or a lower threshold", len(n.Keys), n.Threshold, max(n.Threshold, 1))
	}
	v, err := Verify(envelope, trust, VerifyOptions{Now: now, MaxSkew: ResignSkew, MaxImageSize: popt.MaxImageSize, IgnoreExpiry: true})
	if err == nil {
		return v, nil
	}
	var e *Error
	if !errors.As(err, &e) {
		return nil, err
	}
	why := "it does not pass verification"
	switch e.Code {
	case CodeBadSignature, CodeThresholdNotMet:
		why = "its signatures do not verify with the given public keys: the envelope was changed after signing, or is signed by other keys"
	case CodeMalformed, CodeTooLarge, CodeWrongPayloadType, CodeUnsupportedSchema:
		why = "it is not a well-formed fwagent manifest"
	}
	return nil, &Error{Code: e.Code, Msg: fmt.Sprintf("refusing to sign this envelope again: %s; do not publish it: check the payload, or start again from the reviewed payload with fwctl sign (%s)", why, e.Msg), Err: e.Err}
}

// ErrNoRelease means an edit named a release the manifest does not carry.
var ErrNoRelease = errors.New("no such release in the manifest")

// ErrNoRollout means an edit needs a rollout the release does not carry.
var ErrNoRollout = errors.New("the release has no rollout")

// ReleaseEdit returns an Edit that applies fn to the release with this id.
func ReleaseEdit(id string, fn func(r *Release) error) Edit {
	return func(m *Manifest) error {
		r := m.Release(id)
		if r == nil {
			ids := make([]string, 0, len(m.Releases))
			for _, r := range m.Releases {
				ids = append(ids, r.ID)
			}
			return fmt.Errorf("release %q: %w (it has: %s)", id, ErrNoRelease, strings.Join(ids, ", "))
		}
		return fn(r)
	}
}

// SetStages gives r a rollout with these stages, creating it (with the
// release id as rollout id) when absent. An existing rollout keeps its id,
// so devices keep their buckets, and its lists and paused flag.
func (r *Release) SetStages(stages []Stage) {
	if r.Rollout == nil {
		r.Rollout = &Rollout{ID: r.ID}
	}
	r.Rollout.Stages = append([]Stage{}, stages...)
}

// SetPaused pauses or resumes r's rollout. A release without rollout gets
// one that admits every device (one stage at 100% at issued time) so that
// pausing it means something.
func (r *Release) SetPaused(paused bool, now time.Time) {
	if r.Rollout == nil {
		if !paused {
			return
		}
		r.Rollout = &Rollout{ID: r.ID, Stages: []Stage{{At: now.UTC().Truncate(time.Second), Percent: 100}}}
	}
	r.Rollout.Paused = paused
}

// Advance opens the next stage now: the first stage whose at is after now
// is moved to now (later stages keep their times). It returns the index of
// the stage that became current, or an error when the last stage is
// already open. `fwctl rollout advance` calls it after checking reports.
func (ro *Rollout) Advance(now time.Time) (int, error) {
	now = now.UTC().Truncate(time.Second)
	cur, _ := ro.Current(now)
	next := cur + 1
	if next >= len(ro.Stages) {
		return cur, fmt.Errorf("rollout %s is already at its last stage: add stages with `fwctl rollout set`", ro.ID)
	}
	if next > 0 && !now.After(ro.Stages[next-1].At) {
		return cur, fmt.Errorf("rollout %s opened stage %d at %s, this second: wait a second before advancing", ro.ID, next, stamp(ro.Stages[next-1].At))
	}
	ro.Stages[next].At = now
	return next, nil
}

// ParseStages parses "5%@2026-12-01T02:00:00Z,25%@2026-12-03T02:00:00Z":
// comma-separated PERCENT%@RFC3339 items (the % sign is optional). It checks
// each item; Validate checks their order.
func ParseStages(s string) ([]Stage, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("no stages given: write them like 5%@2026-12-01T02:00:00Z,100%@2026-12-07T02:00:00Z")
	}
	var out []Stage
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		pct, at, ok := strings.Cut(item, "@")
		if !ok {
			return nil, fmt.Errorf("stage %q: write PERCENT%%@TIME, like 5%%@2026-12-01T02:00:00Z", item)
		}
		p, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(pct), "%"), 64)
		if err != nil || math.IsNaN(p) || p < 0 || p > 100 {
			return nil, fmt.Errorf("stage %q: percent must be a number from 0 to 100", item)
		}
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(at))
		if err != nil {
			return nil, fmt.Errorf("stage %q: time must be RFC 3339, like 2026-12-01T02:00:00Z", item)
		}
		out = append(out, Stage{At: t.UTC(), Percent: p})
	}
	return out, nil
}
