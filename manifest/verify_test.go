package manifest

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envelopeOf decodes raw into a dsse.Envelope for tests that tamper with it.
func envelopeOf(t *testing.T, raw []byte) dsse.Envelope {
	t.Helper()
	var env dsse.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestVerifyRoundTrip(t *testing.T) {
	pubs, privs := newKeys(t, 1)
	payload := validPayload(t)
	v, err := Verify(mustSign(t, payload, privs[0]), NewTrust(1, pubs...), VerifyOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Payload) != string(payload) {
		t.Error("payload differs")
	}
	if v.Manifest.Serial != 7 || len(v.Manifest.Releases) != 1 {
		t.Errorf("manifest = %+v", v.Manifest)
	}
	r := v.Manifest.Releases[0]
	if r.Image.Size != 1048576 || r.Rollout == nil || r.Rollout.Stages[1].Percent != 25 {
		t.Errorf("release = %+v", r)
	}
	if !slices.Equal(v.Signers, []string{KeyID(pubs[0])}) {
		t.Errorf("signers = %v", v.Signers)
	}
	if len(v.Digest) != 64 {
		t.Errorf("digest = %q", v.Digest)
	}
	t.Run("the same manifest is accepted again with its serial and digest", func(t *testing.T) {
		_, err := Verify(mustSign(t, payload, privs[0]), NewTrust(1, pubs...), VerifyOptions{Now: testNow, LastSerial: 7, LastDigest: v.Digest})
		wantCode(t, err, "")
	})
}

func TestVerifyRefusals(t *testing.T) {
	pubs, privs := newKeys(t, 3)
	trust1 := NewTrust(1, pubs[0])
	payload := validPayload(t)
	good := mustSign(t, payload, privs[0])

	with := func(edit func(m map[string]any)) []byte {
		m := payloadMap()
		edit(m)
		return mustSign(t, mustJSON(t, m), privs[0])
	}
	tamper := func(edit func(env *dsse.Envelope)) []byte {
		env := envelopeOf(t, good)
		edit(&env)
		b, _ := json.Marshal(env)
		return b
	}
	tests := []struct {
		name     string
		envelope []byte
		trust    Trust
		opt      VerifyOptions
		want     Code
	}{
		{"a valid manifest is accepted", good, trust1, VerifyOptions{Now: testNow}, ""},
		{"a changed payload is a bad signature", tamper(func(e *dsse.Envelope) {
			e.Payload = b64([]byte(strings.Replace(string(payload), `"serial":7`, `"serial":8`, 1)))
		}), trust1, VerifyOptions{Now: testNow}, CodeBadSignature},
		{"a flipped signature byte is a bad signature", tamper(func(e *dsse.Envelope) {
			s := unb64(t, e.Signatures[0].Sig)
			s[0] ^= 1
			e.Signatures[0].Sig = b64(s)
		}), trust1, VerifyOptions{Now: testNow}, CodeBadSignature},
		{"a signature by an untrusted key does not meet the threshold", mustSign(t, payload, privs[1]), trust1, VerifyOptions{Now: testNow}, CodeThresholdNotMet},
		{"an envelope without signatures does not meet the threshold", tamper(func(e *dsse.Envelope) { e.Signatures = nil }), trust1, VerifyOptions{Now: testNow}, CodeThresholdNotMet},
		{"a zero threshold is refused", good, Trust{Keys: trust1.Keys}, VerifyOptions{Now: testNow}, CodeThresholdNotMet},
		{"a threshold above the number of keys is refused", good, NewTrust(2, pubs[0]), VerifyOptions{Now: testNow}, CodeThresholdNotMet},
		{"another payloadType is refused", tamper(func(e *dsse.Envelope) { e.PayloadType = "application/vnd.in-toto+json" }), trust1, VerifyOptions{Now: testNow}, CodeWrongPayloadType},
		{"a payloadType differing in case is refused", tamper(func(e *dsse.Envelope) { e.PayloadType = strings.ToUpper(PayloadType) }), trust1, VerifyOptions{Now: testNow}, CodeWrongPayloadType},
		{"an expired manifest is refused", good, trust1, VerifyOptions{Now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, CodeExpired},
		{"an expired manifest passes when fwctl ignores expiry", good, trust1, VerifyOptions{Now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), IgnoreExpiry: true}, ""},
		{"ignoring expiry still checks the signatures", tamper(func(e *dsse.Envelope) {
			e.Payload = b64([]byte(strings.Replace(string(payload), `"serial":7`, `"serial":8`, 1)))
		}), trust1, VerifyOptions{Now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), IgnoreExpiry: true}, CodeBadSignature},
		{"a manifest issued beyond the skew is not yet valid", good, trust1, VerifyOptions{Now: time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC), MaxSkew: 30 * time.Minute}, CodeNotYetValid},
		{"a manifest issued within the skew is accepted", good, trust1, VerifyOptions{Now: time.Date(2026, 11, 30, 23, 45, 0, 0, time.UTC), MaxSkew: 30 * time.Minute}, ""},
		{"a lower serial is a rollback", good, trust1, VerifyOptions{Now: testNow, LastSerial: 8}, CodeRollback},
		{"an equal serial with another payload is equivocation", good, trust1, VerifyOptions{Now: testNow, LastSerial: 7, LastDigest: strings.Repeat("0", 64)}, CodeEquivocation},
		{"an equal serial without a stored digest is accepted", good, trust1, VerifyOptions{Now: testNow, LastSerial: 7}, ""},
		{"a higher serial is accepted whatever the old digest", good, trust1, VerifyOptions{Now: testNow, LastSerial: 6, LastDigest: strings.Repeat("0", 64)}, ""},
		{"a malformed signed payload is malformed", with(func(m map[string]any) { m["serial"] = "seven" }), trust1, VerifyOptions{Now: testNow}, CodeMalformed},
		{"schema 2 is an unsupported schema", with(func(m map[string]any) { m["schema"] = 2; m["future"] = true }), trust1, VerifyOptions{Now: testNow}, CodeUnsupportedSchema},
		{"an image above the size cap is too large", good, trust1, VerifyOptions{Now: testNow, MaxImageSize: 1000}, CodeTooLarge},
		{"an envelope that is not JSON is malformed", []byte("not json"), trust1, VerifyOptions{Now: testNow}, CodeMalformed},
		{"an envelope with an unknown field is malformed", []byte(`{"payloadType":"x","payload":"eA==","signatures":[],"extra":1}`), trust1, VerifyOptions{Now: testNow}, CodeMalformed},
		{"an envelope with a duplicate payload key is malformed", []byte(`{"payloadType":"x","payload":"eA==","payload":"eQ==","signatures":[]}`), trust1, VerifyOptions{Now: testNow}, CodeMalformed},
		{"an envelope with a payload that is not base64 is malformed", tamper(func(e *dsse.Envelope) { e.Payload = "!!!" }), trust1, VerifyOptions{Now: testNow}, CodeMalformed},
		{"an envelope above the size cap is too large", make([]byte, MaxEnvelopeSize+1), trust1, VerifyOptions{Now: testNow}, CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.envelope, tt.trust, tt.opt)
			wantCode(t, err, tt.want)
		})
	}
}

func TestVerifyThreshold(t *testing.T) {
	pubs, privs := newKeys(t, 4)
	trust := NewTrust(2, pubs[:3]...) // 2 of 3; key 3 is a stranger
	payload := validPayload(t)
	addSig := func(env []byte, k ed25519.PrivateKey) []byte {
		t.Helper()
		out, err := AddSignatures(env, k)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	duplicateFirst := func(env []byte) []byte {
		e := envelopeOf(t, env)
		e.Signatures = append(e.Signatures, e.Signatures[0])
		b, _ := json.Marshal(e)
		return b
	}
	withGarbage := func(env []byte, keyid string) []byte {
		e := envelopeOf(t, env)
		e.Signatures = append(e.Signatures, dsse.Signature{KeyID: keyid, Sig: "not base64!"})
		b, _ := json.Marshal(e)
		return b
	}
	one := mustSign(t, payload, privs[0])
	tests := []struct {
		name        string
		envelope    []byte
		want        Code
		wantSigners int
	}{
		{"one signature of three does not meet 2-of-3", one, CodeThresholdNotMet, 0},
		{"two people signing one after the other meet 2-of-3", addSig(one, privs[1]), "", 2},
		{"three signatures meet 2-of-3", addSig(addSig(one, privs[1]), privs[2]), "", 3},
		{"a key signing twice counts once", duplicateFirst(one), CodeThresholdNotMet, 0},
		{"a stranger's signature does not count", addSig(one, privs[3]), CodeThresholdNotMet, 0},
		{"two keys in one sign call meet 2-of-3", mustSign(t, payload, privs[0], privs[2]), "", 2},
		{"a stranger's garbage signature does not spoil a valid envelope", withGarbage(mustSign(t, payload, privs[0], privs[1]), "stranger"), "", 2},
		{"a trusted key's garbage signature does not spoil two valid ones", withGarbage(mustSign(t, payload, privs[0], privs[1]), KeyID(pubs[2])), "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Verify(tt.envelope, trust, VerifyOptions{Now: testNow})
			wantCode(t, err, tt.want)
			if err == nil && len(v.Signers) != tt.wantSigners {
				t.Fatalf("signers = %v, want %d", v.Signers, tt.wantSigners)
			}
		})
	}
}

func TestAddSignaturesNeverDuplicatesAKeyID(t *testing.T) {
	_, privs := newKeys(t, 2)
	env := mustSign(t, validPayload(t), privs[0], privs[0])
	if n := len(envelopeOf(t, env).Signatures); n != 1 {
		t.Fatalf("a key given twice to Sign made %d signatures", n)
	}
	env, err := AddSignatures(env, privs[0], privs[1], privs[1])
	if err != nil {
		t.Fatal(err)
	}
	if n := len(envelopeOf(t, env).Signatures); n != 2 {
		t.Fatalf("got %d signatures, want 2", n)
	}
	t.Run("it refuses an envelope of another payload type", func(t *testing.T) {
		e := envelopeOf(t, env)
		e.PayloadType = "text/plain"
		b, _ := json.Marshal(e)
		_, err := AddSignatures(b, privs[0])
		wantCode(t, err, CodeWrongPayloadType)
	})
}

func TestErrorsAreTyped(t *testing.T) {
	_, err := Verify([]byte("{}"), NewTrust(1), VerifyOptions{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not *Error", err)
	}
	if !errors.Is(err, &Error{Code: e.Code}) {
		t.Fatal("errors.Is by code does not match")
	}
}

func TestReadUnverifiedShowsAnUnsignedEnvelope(t *testing.T) {
	env := dsse.Envelope{PayloadType: PayloadType, Payload: b64(validPayload(t))}
	raw, _ := json.Marshal(env)
	u, err := ReadUnverified(raw, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Manifest == nil || u.Manifest.Serial != 7 || len(u.KeyIDs) != 0 {
		t.Fatalf("unverified = %+v", u)
	}
}

// TestMaxEnvelopeSizeHoldsTheLargestPayloadAndEverySignature guards the
// agent's fetch cap: an envelope of a MaxPayloadSize payload with
// MaxSignatures signatures, as Sign and AddSignatures write it, must fit
// in MaxEnvelopeSize and parse.
func TestMaxEnvelopeSizeHoldsTheLargestPayloadAndEverySignature(t *testing.T) {
	if b64len := (MaxPayloadSize + 2) / 3 * 4; MaxEnvelopeSize-b64len < MaxSignatures*1024 {
		t.Fatalf("MaxEnvelopeSize leaves %d bytes beside the base64 payload, want at least 1 KiB per signature", MaxEnvelopeSize-b64len)
	}
	payload := make([]byte, MaxPayloadSize)
	for i := range payload {
		payload[i] = byte(i*7 + i>>8)
	}
	_, privs := newKeys(t, MaxSignatures)
	env := mustSign(t, payload, privs[:MaxSignatures-1]...)
	env, err := AddSignatures(env, privs[MaxSignatures-1])
	if err != nil {
		t.Fatal(err)
	}
	if len(env) > MaxEnvelopeSize {
		t.Fatalf("envelope is %d bytes, MaxEnvelopeSize is %d", len(env), MaxEnvelopeSize)
	}
	e, got, err := ParseEnvelope(env)
	if err != nil || len(e.Signatures) != MaxSignatures || len(got) != MaxPayloadSize {
		t.Fatalf("parse: %v", err)
	}
	t.Logf("largest envelope %d bytes, limit %d (%d spare)", len(env), MaxEnvelopeSize, MaxEnvelopeSize-len(env))
}
