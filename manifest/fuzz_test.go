package manifest

import (
	"testing"
	"time"
)

func FuzzParsePayload(f *testing.F) {
	f.Add(validPayload(f))
	f.Add([]byte(`{"schema":1,"serial":1,"issued":"2026-01-01T00:00:00Z","expires":"2027-01-01T00:00:00Z","releases":[]}`))
	f.Add([]byte(`{"a":{"a":{"a":[[[[]]]]}}}`))
	f.Add([]byte(`{"schema":1,"schema":1}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParsePayload(data, ParseOptions{})
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		// Whatever parses must marshal and parse again.
		b, err := m.Marshal(ParseOptions{})
		if err != nil {
			t.Fatalf("parsed manifest does not marshal: %v", err)
		}
		if _, err := ParsePayload(b, ParseOptions{}); err != nil {
			t.Fatalf("marshalled manifest does not parse: %v\n%s", err, b)
		}
		for _, r := range m.Releases {
			r.Rollout.Evaluate("SERIAL", []string{"pilot"}, time.Unix(0, 0))
		}
	})
}

func FuzzVerifyEnvelope(f *testing.F) {
	pubs, privs := newKeys(f, 2)
	trust := NewTrust(1, pubs...)
	f.Add(mustSign(f, validPayload(f), privs[0]))
	f.Add(mustSign(f, validPayload(f), privs[0], privs[1]))
	f.Add([]byte(`{"payloadType":"application/vnd.fwagent.manifest+json","payload":"e30=","signatures":[{"keyid":"","sig":"AA=="}]}`))
	f.Add([]byte(`{"payloadType":"x","payload":"","signatures":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ReadUnverified(data, ParseOptions{}); err != nil && CodeOf(err) == "" {
			t.Fatalf("untyped error: %v", err)
		}
		v, err := Verify(data, trust, VerifyOptions{Now: testNow})
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if len(v.Signers) < 1 || v.Manifest == nil {
			t.Fatalf("accepted without signer: %+v", v)
		}
	})
}
