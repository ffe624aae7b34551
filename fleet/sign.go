package fleet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
)

// Envelope is a signed message: the payload (a CheckIn or Report in JSON)
// exactly as signed, the type it claims, the device's public key and the
// Ed25519 signature over PAE(Type, Payload). The server verifies the
// signature on the bytes it received before it parses them, so no
// canonical JSON form is needed: the bytes are the message.
type Envelope struct {
	Type    string `json:"type"`
	Key     string `json:"key"`     // base64 of the 32-byte Ed25519 public key
	Payload string `json:"payload"` // base64 of the payload bytes
	Sig     string `json:"sig"`     // base64 of the 64-byte signature
}

// pae is the pre-authentication encoding of the signed bytes (DSSE's,
// with its own prefix): "FWFLEETv1 <len(type)> <type> <len(payload)> <payload>".
func pae(typ string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(32 + len(typ) + len(payload))
	b.WriteString("FWFLEETv1 ")
	b.WriteString(strconv.Itoa(len(typ)))
	b.WriteByte(' ')
	b.WriteString(typ)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// SignedBytes returns the bytes a signature covers for a payload of type
// typ (exported for other implementations of the protocol and its tests).
func SignedBytes(typ string, payload []byte) []byte { return pae(typ, payload) }

// SealBytes signs payload as type typ with priv.
func SealBytes(priv ed25519.PrivateKey, typ string, payload []byte) *Envelope {
	sig := ed25519.Sign(priv, pae(typ, payload))
	return &Envelope{
		Type:    typ,
		Key:     base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)),
		Payload: base64.StdEncoding.EncodeToString(payload),
		Sig:     base64.StdEncoding.EncodeToString(sig),
	}
}

// ParseEnvelope decodes an envelope (one JSON object, known fields only).
func ParseEnvelope(body []byte) (*Envelope, error) {
	var e Envelope
	if err := decodeStrict(body, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// Open verifies the envelope's signature and type and returns the payload
// and the public key that signed it. A wrong type is an *InvalidError that
// wraps ErrWrongType; a payload that is not base64 is an *InvalidError (it
// says nothing of the signature); a bad key or signature wraps
// ErrBadSignature.
func (e *Envelope) Open(wantType string) (payload []byte, key ed25519.PublicKey, err error) {
	if e.Type != wantType {
		return nil, nil, &InvalidError{Field: "type", Problem: fmt.Sprintf("is %q, want %q at this endpoint", e.Type, wantType), kind: ErrWrongType}
	}
	k, err := base64.StdEncoding.DecodeString(e.Key)
	if err != nil || len(k) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("%w: the key is not a base64 Ed25519 public key", ErrBadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(e.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("%w: the signature is not a base64 Ed25519 signature", ErrBadSignature)
	}
	payload, err = base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, nil, &InvalidError{Field: "payload", Problem: "is not base64: encode the payload bytes in standard base64 with padding (RFC 4648)"}
	}
	if !ed25519.Verify(k, pae(e.Type, payload), sig) {
		return nil, nil, fmt.Errorf("%w: the signature does not verify with the key in the envelope", ErrBadSignature)
	}
	return payload, k, nil
}

// KeyID names a public key for humans and the store: the hex of the first
// 16 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// Marshal encodes the envelope.
func (e *Envelope) Marshal() []byte {
	b, _ := json.Marshal(e) // strings only: cannot fail
	return b
}
