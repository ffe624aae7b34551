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

// FuzzParseStages feeds arbitrary --stages strings to the rollout stage
// parser, then to the rollout's validation: neither panics, the parser's
// percents are within 0-100, and what validation accepts is in time order
// with percents that never go down.
func FuzzParseStages(f *testing.F) {
	for _, s := range []string{
		"5%@2026-12-01T02:00:00Z,25%@2026-12-03T02:00:00Z,100%@2026-12-07T02:00:00Z",
		"0%@2026-01-01T00:00:00Z", "100%@2026-01-01T00:00:00+02:00", "", ",", "5%", "@", "101%@2026-01-01T00:00:00Z",
		"50%@2026-01-02T00:00:00Z,5%@2026-01-03T00:00:00Z", "1.5%@2026-01-01T00:00:00Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		stages, err := ParseStages(s)
		if err != nil {
			return
		}
		for i, st := range stages {
			if st.Percent < 0 || st.Percent > 100 {
				t.Fatalf("%q: stage %d has percent %v", s, i, st.Percent)
			}
		}
		r := &Rollout{ID: "fuzz", Stages: stages}
		if r.validate("rollout") != nil {
			return
		}
		for i := 1; i < len(stages); i++ {
			if !stages[i].At.After(stages[i-1].At) || stages[i].Percent < stages[i-1].Percent {
				t.Fatalf("%q: validation accepted stage %d out of order: %+v after %+v", s, i, stages[i], stages[i-1])
			}
		}
	})
}
