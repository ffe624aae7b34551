package manifest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// PayloadType is the DSSE payloadType of every fwagent manifest. Signatures
// cover it (through PAE), so an envelope signed for another purpose never
// verifies as a manifest.
const PayloadType = "application/vnd.fwagent.manifest+json"

// Size limits.
const (
	// MaxPayloadSize caps the decoded payload.
	MaxPayloadSize = 1 << 20
	// MaxEnvelopeSize caps the envelope: the padded base64 of a
	// MaxPayloadSize payload (4 bytes per started 3) plus 256 KiB for the
	// JSON around it and MaxSignatures signatures (about 150 bytes each as
	// fwctl writes them). An agent's manifest fetch cap must be at least
	// this; fwctl never writes a larger envelope.
	MaxEnvelopeSize = (MaxPayloadSize+2)/3*4 + 256<<10
	// MaxSignatures caps the signatures one envelope may carry.
	MaxSignatures = 64
)

// signer is a dsse.Signer (and dsse.Verifier) over one Ed25519 key.
type signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
}

var (
	_ dsse.Signer   = (*signer)(nil)
	_ dsse.Verifier = (*verifier)(nil)
)

func newSigner(priv ed25519.PrivateKey) (*signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign: %w", ErrNotEd25519)
	}
	pub := priv.Public().(ed25519.PublicKey)
	return &signer{priv: priv, pub: pub, id: KeyID(pub)}, nil
}

func (s *signer) Sign(_ context.Context, data []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, data), nil
}

func (s *signer) KeyID() (string, error) { return s.id, nil }

// verifier is a dsse.Verifier over one trusted Ed25519 public key.
type verifier struct {
	pub ed25519.PublicKey
	id  string
}

func (v *verifier) Verify(_ context.Context, data, sig []byte) error {
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(v.pub, data, sig) {
		return errors.New("ed25519 signature does not verify")
	}
	return nil
}

func (v *verifier) KeyID() (string, error) { return v.id, nil }

func (v *verifier) Public() crypto.PublicKey { return v.pub }

// Sign wraps payload in a new DSSE envelope signed by every key in keys, in
// order, and returns the envelope as indented JSON. A key given twice signs
// once. Sign does not validate the payload: call ParsePayload first.
func Sign(payload []byte, keys ...ed25519.PrivateKey) ([]byte, error) {
	if len(payload) > MaxPayloadSize {
		return nil, newError(CodeTooLarge, nil, "payload is %d bytes, the limit is %d: split the manifest or shorten notes", len(payload), MaxPayloadSize)
	}
	signers, err := signersFor(nil, keys)
	if err != nil {
		return nil, err
	}
	if len(signers) == 0 {
		return nil, errors.New("sign: no signing key given: pass at least one private key")
	}
	es, err := dsse.NewEnvelopeSigner(signers...)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	env, err := es.SignPayload(context.Background(), PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return marshalEnvelope(env)
}

// AddSignatures adds a signature by each key in keys to an existing envelope
// (threshold signing by several people, one after the other) and returns the
// new envelope. Keys that already signed are skipped, so a keyid never
// appears twice. Existing signatures are kept as they are; AddSignatures
// checks neither them nor the payload: Verify does.
func AddSignatures(envelope []byte, keys ...ed25519.PrivateKey) ([]byte, error) {
	env, payload, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != PayloadType {
		return nil, newError(CodeWrongPayloadType, nil, "envelope payloadType is %q, want %q: this is not an fwagent manifest", env.PayloadType, PayloadType)
	}
	have := make(map[string]bool, len(env.Signatures))
	for _, s := range env.Signatures {
		have[s.KeyID] = true
	}
	signers, err := signersFor(have, keys)
	if err != nil {
		return nil, err
	}
	if len(signers) == 0 {
		return marshalEnvelope(env)
	}
	if len(env.Signatures)+len(signers) > MaxSignatures {
		return nil, newError(CodeTooLarge, nil, "an envelope may carry at most %d signatures", MaxSignatures)
	}
	es, err := dsse.NewEnvelopeSigner(signers...)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	// Sign the decoded payload again: the new envelope carries the same
	// payload and payloadType, so the new signatures cover exactly the
	// bytes the existing ones cover.
	fresh, err := es.SignPayload(context.Background(), env.PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	env.Signatures = append(env.Signatures, fresh.Signatures...)
	return marshalEnvelope(env)
}

// signersFor makes one signer per distinct key not already in skip.
func signersFor(skip map[string]bool, keys []ed25519.PrivateKey) ([]dsse.Signer, error) {
	seen := make(map[string]bool)
	var out []dsse.Signer
	for _, k := range keys {
		s, err := newSigner(k)
		if err != nil {
			return nil, err
		}
		if skip[s.id] || seen[s.id] {
			continue
		}
		seen[s.id] = true
		out = append(out, s)
	}
	return out, nil
}

func marshalEnvelope(env *dsse.Envelope) ([]byte, error) {
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseEnvelope decodes envelope JSON strictly (known fields only, no
// duplicate keys, no trailing data, size capped) and returns it with its
// decoded payload. It checks no signature: use Verify for that, or
// ReadUnverified to look inside an envelope without trusting it.
func ParseEnvelope(data []byte) (*dsse.Envelope, []byte, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, nil, newError(CodeTooLarge, nil, "envelope is %d bytes, the limit is %d", len(data), MaxEnvelopeSize)
	}
	unknown, err := checkJSON(data, envelopeFields)
	if err != nil {
		return nil, nil, newError(CodeMalformed, err, "envelope is not valid DSSE JSON")
	}
	if unknown != "" {
		return nil, nil, newError(CodeMalformed, nil, "envelope has unknown field %q: a DSSE envelope holds payloadType, payload and signatures (keyid, sig)", unknown)
	}
	var env dsse.Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, nil, newError(CodeMalformed, err, "envelope is not valid DSSE JSON")
	}
	if env.PayloadType == "" {
		return nil, nil, newError(CodeMalformed, nil, "envelope has no payloadType")
	}
	if len(env.Signatures) > MaxSignatures {
		return nil, nil, newError(CodeTooLarge, nil, "envelope carries %d signatures, the limit is %d", len(env.Signatures), MaxSignatures)
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		// DSSE allows URL-safe base64 as well.
		payload, err = base64.URLEncoding.DecodeString(env.Payload)
		if err != nil {
			return nil, nil, newError(CodeMalformed, nil, "envelope payload is not base64")
		}
	}
	if len(payload) == 0 {
		return nil, nil, newError(CodeMalformed, nil, "envelope payload is empty")
	}
	if len(payload) > MaxPayloadSize {
		return nil, nil, newError(CodeTooLarge, nil, "payload is %d bytes, the limit is %d", len(payload), MaxPayloadSize)
	}
	return &env, payload, nil
}

// envelopeFields are the JSON keys a DSSE envelope may carry.
var envelopeFields = map[string]bool{"payloadType": true, "payload": true, "signatures": true, "keyid": true, "sig": true}

// Unverified is what an envelope says about itself, before any trust.
type Unverified struct {
	PayloadType string
	Payload     []byte
	KeyIDs      []string  // keyid of each signature, as written (may repeat)
	Manifest    *Manifest // nil when the payload does not parse; see ParseErr
	ParseErr    error
}

// ReadUnverified decodes an envelope and parses its payload without
// checking any signature or date, for display (`fwctl inspect`). Never base a
// decision on its result.
func ReadUnverified(envelope []byte, opt ParseOptions) (*Unverified, error) {
	env, payload, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	u := &Unverified{PayloadType: env.PayloadType, Payload: payload}
	for _, s := range env.Signatures {
		u.KeyIDs = append(u.KeyIDs, s.KeyID)
	}
	u.Manifest, u.ParseErr = ParsePayload(payload, opt)
	return u, nil
}
