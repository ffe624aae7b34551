package manifest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/fwagent/fwagent/verify"
)

// Trust is what a device trusts: public keys by key ID, and how many of
// them must sign a manifest.
type Trust struct {
	Keys      map[string]ed25519.PublicKey // key ID (see KeyID) -> key; Verify recomputes the IDs
	Threshold int                          // distinct trusted keys required; at least 1
}

// NewTrust builds a Trust from public keys, indexing them by KeyID. A key
// given twice is counted once.
func NewTrust(threshold int, keys ...ed25519.PublicKey) Trust {
	t := Trust{Keys: make(map[string]ed25519.PublicKey, len(keys)), Threshold: threshold}
	for _, k := range keys {
		t.Keys[KeyID(k)] = k
	}
	return t
}

// normalized re-indexes the keys by their computed KeyID, so a map filled
// by hand with a wrong ID cannot make one key count twice.
func (t Trust) normalized() Trust {
	n := Trust{Keys: make(map[string]ed25519.PublicKey, len(t.Keys)), Threshold: t.Threshold}
	for _, k := range t.Keys {
		if len(k) == ed25519.PublicKeySize {
			n.Keys[KeyID(k)] = k
		}
	}
	return n
}

// VerifyOptions carry the device's clock and memory into Verify.
type VerifyOptions struct {
	Now          time.Time     // the device clock
	MaxSkew      time.Duration // how far in the future issued may be
	LastSerial   int64         // serial of the last accepted manifest; 0 = none
	LastDigest   string        // hex SHA-256 of the last accepted payload; "" = none
	MaxImageSize int64         // cap on every image size; 0 = DefaultMaxImageSize
	// IgnoreExpiry skips only the expiry check. It exists for fwctl, which
	// must verify an envelope before re-signing it (a rollout command may
	// renew an expired manifest); a device must never set it.
	IgnoreExpiry bool
}

// Verified is a manifest that passed every check.
type Verified struct {
	Manifest *Manifest
	Payload  []byte   // the exact signed bytes
	Digest   string   // lowercase hex SHA-256 of Payload; persist it with the serial
	Signers  []string // key IDs of the distinct trusted keys that signed, sorted
}

// Verify accepts a manifest envelope only when at least trust.Threshold
// distinct trusted keys made valid signatures over exactly its payload and
// payloadType PayloadType (a key signing twice counts once, unknown key IDs
// are ignored), the payload parses strictly, it has not expired at opt.Now,
// it was not issued beyond opt.MaxSkew in the future, and its serial is not
// below opt.LastSerial (an equal serial must carry the identical payload).
// Signatures are checked before the payload is parsed. Every refusal is an
// *Error whose Code says why.
func Verify(envelope []byte, trust Trust, opt VerifyOptions) (*Verified, error) {
	trust = trust.normalized()
	if trust.Threshold < 1 {
		return nil, newError(CodeThresholdNotMet, nil, "trust threshold is %d: configure a threshold of at least 1", trust.Threshold)
	}
	if len(trust.Keys) < trust.Threshold {
		return nil, newError(CodeThresholdNotMet, nil, "%d trusted key(s) can never meet threshold %d: configure more public keys or a lower threshold", len(trust.Keys), trust.Threshold)
	}
	env, payload, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != PayloadType {
		return nil, newError(CodeWrongPayloadType, nil, "envelope payloadType is %q, want %q: this is not an fwagent manifest", env.PayloadType, PayloadType)
	}
	signers, badTrusted, err := checkSignatures(env, trust)
	if err != nil {
		return nil, err
	}
	if len(signers) < trust.Threshold {
		if badTrusted > 0 {
			return nil, newError(CodeBadSignature, nil, "%d signature(s) by trusted keys do not verify over this payload (it was changed after signing, or signed with another key); %d of %d required valid: re-sign the manifest", badTrusted, len(signers), trust.Threshold)
		}
		return nil, newError(CodeThresholdNotMet, nil, "%d distinct trusted key(s) signed, %d required: collect more signatures with `fwctl sign`", len(signers), trust.Threshold)
	}

	m, err := ParsePayload(payload, ParseOptions{MaxImageSize: opt.MaxImageSize})
	if err != nil {
		return nil, err
	}
	now := opt.Now
	if !opt.IgnoreExpiry && !m.Expires.After(now) {
		return nil, newError(CodeExpired, nil, "manifest expired at %s (device clock %s): publish a fresh manifest, or fix the device clock", stamp(m.Expires), stamp(now))
	}
	if m.Issued.After(now.Add(opt.MaxSkew)) {
		return nil, newError(CodeNotYetValid, nil, "manifest issued at %s is in the future (device clock %s, allowed skew %s): fix the device clock (NTP) or the signer's clock", stamp(m.Issued), stamp(now), opt.MaxSkew)
	}
	sum := sha256.Sum256(payload)
	digest := hex.EncodeToString(sum[:])
	if m.Serial < opt.LastSerial {
		return nil, newError(CodeRollback, nil, "manifest serial %d is below the last accepted serial %d: someone serves an old manifest; publish one with serial above %d", m.Serial, opt.LastSerial, opt.LastSerial)
	}
	if m.Serial == opt.LastSerial && opt.LastDigest != "" && digest != opt.LastDigest {
		return nil, newError(CodeEquivocation, nil, "manifest serial %d was already accepted with another payload (digest %s, now %s): every change needs a higher serial; publish one above %d", m.Serial, short(opt.LastDigest), short(digest), m.Serial)
	}
	return &Verified{Manifest: m, Payload: payload, Digest: digest, Signers: signers}, nil
}

// checkSignatures returns the sorted IDs of distinct trusted keys with a
// valid signature, and how many signatures claiming a trusted key ID failed.
// Signatures by unknown key IDs are dropped before dsse sees them, so a
// garbage signature by a stranger cannot spoil a valid envelope.
func checkSignatures(env *dsse.Envelope, trust Trust) ([]string, int, error) {
	var sigs []dsse.Signature
	for _, s := range env.Signatures {
		if _, ok := trust.Keys[s.KeyID]; !ok {
			continue // unknown (or missing) key ID: ignored
		}
		if _, err := base64.StdEncoding.DecodeString(s.Sig); err != nil {
			if _, err := base64.URLEncoding.DecodeString(s.Sig); err != nil {
				continue
			}
		}
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 {
		return nil, 0, nil
	}
	ids := make([]string, 0, len(trust.Keys))
	for id := range trust.Keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	vs := make([]dsse.Verifier, 0, len(ids))
	for _, id := range ids {
		vs = append(vs, &verifier{pub: trust.Keys[id], id: id})
	}
	// Threshold 1 here: the threshold is counted below over distinct key IDs.
	ev, err := dsse.NewMultiEnvelopeVerifier(1, vs...)
	if err != nil {
		return nil, 0, newError(CodeThresholdNotMet, err, "no usable trusted key")
	}
	filtered := *env
	filtered.Signatures = sigs
	accepted, _ := ev.Verify(context.Background(), &filtered)
	valid := make(map[string]bool)
	for _, a := range accepted {
		valid[a.KeyID] = true
	}
	bad := 0
	for _, s := range sigs {
		if !valid[s.KeyID] {
			bad++
		}
	}
	signers := make([]string, 0, len(valid))
	for id := range valid {
		signers = append(signers, id)
	}
	slices.Sort(signers)
	return signers, bad, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12] + "..."
	}
	return digest
}

// Evidence is what the safety policy needs from the signatures: the
// distinct trusted keys that signed this manifest, and with it every
// release it carries. Pass it to verify.Decide and verify.DecideImage.
func (v *Verified) Evidence() verify.Evidence {
	if v == nil {
		return verify.Evidence{}
	}
	return verify.Evidence{Signers: slices.Clone(v.Signers)}
}

// String is a one-line summary of a verified manifest.
func (v *Verified) String() string {
	return fmt.Sprintf("serial %d, %d release(s), issued %s, expires %s, signed by %d trusted key(s), digest %s",
		v.Manifest.Serial, len(v.Manifest.Releases), stamp(v.Manifest.Issued), stamp(v.Manifest.Expires), len(v.Signers), short(v.Digest))
}
