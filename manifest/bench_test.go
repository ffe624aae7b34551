package manifest

import "testing"

// BenchmarkVerify measures a full 2-of-3 verification of a small manifest.
func BenchmarkVerify(b *testing.B) {
	pubs, privs := newKeys(b, 3)
	env := mustSign(b, validPayload(b), privs[0], privs[1])
	trust := NewTrust(2, pubs...)
	b.SetBytes(int64(len(env)))
	for b.Loop() {
		if _, err := Verify(env, trust, VerifyOptions{Now: testNow}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvaluate measures one rollout eligibility decision.
func BenchmarkEvaluate(b *testing.B) {
	m, err := ParsePayload(validPayload(b), ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ro := m.Releases[0].Rollout
	for b.Loop() {
		ro.Evaluate("DS-9632NXI-I81620190101CCRR123456789WCVU", nil, testNow)
	}
}
