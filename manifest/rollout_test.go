package manifest

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// withPayload returns env with its payload replaced and its signatures
// kept: what someone who can write the published file makes of it.
func withPayload(t *testing.T, env, payload []byte) []byte {
	t.Helper()
	e := envelopeOf(t, env)
	e.Payload = b64(payload)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serials(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("DS-9632NXI-I8%08dCCRR%09dWCVU", 20190101+i%3000, i)
	}
	return out
}

const bucketR1ABC = 8004

func TestBucketIsStableAndDocumented(t *testing.T) {
	tests := []struct {
		rollout, serial string
	}{{"r1", "ABC"}, {"ids-4.1.25", "DS-1"}, {"", ""}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("bucket of %q/%q is in range and repeatable", tt.rollout, tt.serial), func(t *testing.T) {
			b := Bucket(tt.rollout, tt.serial)
			if b < 0 || b >= Buckets || b != Bucket(tt.rollout, tt.serial) {
				t.Fatalf("bucket %d", b)
			}
		})
	}
	// Fixed value, so a change of the rule fails loudly. Computed outside Go:
	// printf 'r1/ABC' | sha256sum | cut -c1-16 -> hex, as integer mod 10000.
	if got := Bucket("r1", "ABC"); got != bucketR1ABC {
		t.Fatalf("Bucket(r1, ABC) = %d, want %d", got, bucketR1ABC)
	}
}

func TestEligibleShareMatchesPercent(t *testing.T) {
	all := serials(100000)
	const id = "ids-4.1.25-r1"
	buckets := make([]int, len(all))
	for i, s := range all {
		buckets[i] = Bucket(id, s)
	}
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, pct := range []float64{1, 5, 25, 50} {
		t.Run(fmt.Sprintf("at %g%% the eligible share is within half a point", pct), func(t *testing.T) {
			r := &Rollout{ID: id, Stages: []Stage{{At: start, Percent: pct}}}
			n := 0
			for i, b := range buckets {
				eligible := float64(b) < pct*100
				// Evaluate is the rule; check it agrees on every 10th serial
				// (all of them would be slow under -race).
				if i%10 == 0 && r.Evaluate(all[i], nil, start).Eligible != eligible {
					t.Fatalf("Evaluate disagrees with the bucket rule for %s", all[i])
				}
				if eligible {
					n++
				}
			}
			share := float64(n) * 100 / float64(len(all))
			t.Logf("%g%%: %.3f%% eligible of %d serials", pct, share, len(all))
			if math.Abs(share-pct) > 0.5 {
				t.Fatalf("share %.3f%%, want %g%% +- 0.5", share, pct)
			}
		})
	}
}

func TestEligibilityIsMonotonicInPercent(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := &Rollout{ID: "r", Stages: []Stage{
		{At: start, Percent: 1}, {At: start.Add(time.Hour), Percent: 5},
		{At: start.Add(2 * time.Hour), Percent: 25}, {At: start.Add(3 * time.Hour), Percent: 50},
		{At: start.Add(4 * time.Hour), Percent: 100},
	}}
	for _, s := range serials(5000) {
		was := false
		for i := range r.Stages {
			e := r.Evaluate(s, nil, r.Stages[i].At)
			if was && !e.Eligible {
				t.Fatalf("serial %s eligible at stage %d but not at stage %d", s, i-1, i)
			}
			was = e.Eligible
		}
		if !was {
			t.Fatalf("serial %s not eligible at 100%%", s)
		}
	}
}

func TestEvaluate(t *testing.T) {
	start := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	// Find a serial whose bucket is above 5% so rules other than the bucket decide.
	high := ""
	for _, s := range serials(100) {
		if Bucket("r1", s) >= 2500 {
			high = s
			break
		}
	}
	low := ""
	for _, s := range serials(1000) {
		if Bucket("r1", s) < 500 {
			low = s
			break
		}
	}
	r := &Rollout{ID: "r1", Stages: []Stage{{At: start, Percent: 5}, {At: start.Add(48 * time.Hour), Percent: 25}},
		Include: []string{high, "VIP-IN"}, Exclude: []string{low}, Groups: []string{"pilot"}}
	tests := []struct {
		name     string
		r        *Rollout
		serial   string
		groups   []string
		now      time.Time
		eligible bool
		stage    int
		paused   bool
	}{
		{"a release without rollout is eligible for everyone", nil, "x", nil, start, true, -1, false},
		{"an excluded low bucket is not eligible", r, low, nil, start, false, 0, false},
		{"an excluded serial in a group is not eligible", r, low, []string{"pilot"}, start, false, 0, false},
		{"an included serial is eligible before the first stage", r, high, nil, start.Add(-time.Hour), true, -1, false},
		{"an included serial matches without case and spaces", r, " vip-in ", nil, start, true, 0, false},
		{"a device in a rollout group is eligible", r, "OTHER", []string{"lab", "Pilot"}, start, true, 0, false},
		{"a high bucket waits at 5%", &Rollout{ID: "r1", Stages: r.Stages}, high, nil, start, false, 0, false},
		{"a high bucket is not eligible before the first stage", &Rollout{ID: "r1", Stages: r.Stages}, high, nil, start.Add(-time.Second), false, -1, false},
		{"a bucket below 25% is eligible at the second stage", &Rollout{ID: "r1", Stages: r.Stages}, high, nil, start.Add(48 * time.Hour), Bucket("r1", high) < 2500, 1, false},
		{"a rollout without stages admits only lists", &Rollout{ID: "r1"}, high, nil, start, false, -1, false},
		{"a paused rollout reports paused", &Rollout{ID: "r1", Stages: r.Stages, Paused: true}, low, nil, start, true, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.r.Evaluate(tt.serial, tt.groups, tt.now)
			if e.Eligible != tt.eligible || e.Stage != tt.stage || e.Paused != tt.paused || e.Reason == "" {
				t.Fatalf("got %+v, want eligible=%v stage=%d paused=%v", e, tt.eligible, tt.stage, tt.paused)
			}
		})
	}
}

func TestParseStages(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		ok   bool
	}{
		{"three stages parse", "5%@2026-12-01T02:00:00Z,25%@2026-12-03T02:00:00Z,100%@2026-12-07T02:00:00Z", 3, true},
		{"a percent without sign parses", "0.5@2026-12-01T02:00:00+01:00", 1, true},
		{"an empty list is refused", "", 0, false},
		{"a missing at is refused", "5%", 0, false},
		{"a bad time is refused", "5%@tomorrow", 0, false},
		{"a percent above 100 is refused", "150%@2026-12-01T02:00:00Z", 0, false},
		{"a NaN percent is refused", "NaN%@2026-12-01T02:00:00Z", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := ParseStages(tt.in)
			if (err == nil) != tt.ok || len(st) != tt.n {
				t.Fatalf("got %v, %v", st, err)
			}
		})
	}
}

func TestResignRewritesTheRollout(t *testing.T) {
	pubs, privs := newKeys(t, 2)
	env := mustSign(t, validPayload(t), privs[0], privs[1])
	trust := NewTrust(2, pubs...)
	now := testNow.Add(90 * time.Minute)
	stages, _ := ParseStages("1%@2026-12-02T00:00:00Z,50%@2026-12-04T00:00:00Z")
	out, m, err := Resign(env, trust, privs[:1], RewriteOptions{Now: now}, ReleaseEdit("ids-4.1.25", func(r *Release) error {
		r.SetStages(stages)
		r.SetPaused(true, now)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(out, NewTrust(1, pubs[0]), VerifyOptions{Now: now, LastSerial: 7})
	if err != nil {
		t.Fatal(err)
	}
	ro := v.Manifest.Releases[0].Rollout
	if v.Manifest.Serial != 8 || !v.Manifest.Issued.Equal(now) || !ro.Paused || ro.ID != "ids-4.1.25-r1" || len(ro.Stages) != 2 || len(ro.Include) != 1 {
		t.Fatalf("rewritten manifest %+v rollout %+v", m, ro)
	}
	t.Run("old signatures are dropped", func(t *testing.T) {
		_, err := Verify(out, NewTrust(2, pubs...), VerifyOptions{Now: now})
		wantCode(t, err, CodeThresholdNotMet)
	})
	t.Run("an unknown release is refused", func(t *testing.T) {
		_, _, err := Resign(env, trust, privs[:1], RewriteOptions{Now: now}, ReleaseEdit("nope", func(*Release) error { return nil }))
		if err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("a rewrite after expiry needs a new expiry", func(t *testing.T) {
		late := time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
		_, _, err := Resign(env, trust, privs[:1], RewriteOptions{Now: late}, nil)
		wantCode(t, err, CodeExpired)
		_, _, err = Resign(env, trust, privs[:1], RewriteOptions{Now: late, Expires: late.Add(time.Hour)}, nil)
		wantCode(t, err, "")
	})
	t.Run("a tampered payload is refused, not re-signed", func(t *testing.T) {
		m := payloadMap()
		release0(m)["image"].(map[string]any)["urls"] = []any{"https://evil.example/digicap.dav"}
		tampered := withPayload(t, env, mustJSON(t, m))
		_, _, err := Resign(tampered, trust, privs[:1], RewriteOptions{Now: now}, nil)
		wantCode(t, err, CodeBadSignature)
		if !strings.Contains(err.Error(), "changed after signing") {
			t.Fatalf("message %q does not say the envelope was changed", err)
		}
	})
	t.Run("an envelope signed by other keys is refused", func(t *testing.T) {
		_, strangers := newKeys(t, 1)
		other := mustSign(t, validPayload(t), strangers[0])
		_, _, err := Resign(other, NewTrust(1, pubs[0]), privs[:1], RewriteOptions{Now: now}, nil)
		wantCode(t, err, CodeThresholdNotMet)
	})
	t.Run("an envelope below the threshold is refused", func(t *testing.T) {
		one := mustSign(t, validPayload(t), privs[0])
		_, _, err := Resign(one, trust, privs[:1], RewriteOptions{Now: now}, nil)
		wantCode(t, err, CodeThresholdNotMet)
	})
	t.Run("a malformed envelope is refused", func(t *testing.T) {
		_, _, err := Resign([]byte(`{"payloadType":"x"`), trust, privs[:1], RewriteOptions{Now: now}, nil)
		wantCode(t, err, CodeMalformed)
	})
	t.Run("invalid stages are refused before signing", func(t *testing.T) {
		bad, _ := ParseStages("50%@2026-12-02T00:00:00Z,5%@2026-12-04T00:00:00Z")
		_, _, err := Resign(env, trust, privs[:1], RewriteOptions{Now: now}, ReleaseEdit("ids-4.1.25", func(r *Release) error { r.SetStages(bad); return nil }))
		wantCode(t, err, CodeMalformed)
	})
}

func TestAdvanceOpensTheNextStage(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := &Rollout{ID: "r", Stages: []Stage{{At: start, Percent: 5}, {At: start.Add(72 * time.Hour), Percent: 25}}}
	now := start.Add(time.Hour)
	i, err := r.Advance(now)
	if err != nil || i != 1 || !r.Stages[1].At.Equal(now) {
		t.Fatalf("advance = %d, %v, stages %+v", i, err, r.Stages)
	}
	if _, p := r.Current(now); p != 25 {
		t.Fatalf("percent after advance = %g", p)
	}
	if _, err := r.Advance(now.Add(time.Hour)); err == nil {
		t.Fatal("advancing past the last stage should fail")
	}
}

func TestVerifyForResignNamesAnImpossibleThreshold(t *testing.T) {
	pubs, privs := newKeys(t, 1)
	env := mustSign(t, validPayload(t), privs[0])
	_, err := VerifyForResign(env, NewTrust(2, pubs...), testNow, ParseOptions{})
	wantCode(t, err, CodeThresholdNotMet)
	if strings.Contains(err.Error(), "changed after signing") || !strings.Contains(err.Error(), "can never meet threshold 2") {
		t.Fatalf("message %q should blame the threshold, not the envelope", err)
	}
}

func TestEligibilityJSONNumbersStagesFromOne(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &Rollout{ID: "r1", Stages: []Stage{{At: at, Percent: 5}, {At: at.Add(time.Hour), Percent: 100}}}
	for _, tt := range []struct {
		name string
		now  time.Time
		want int
	}{
		{"before the first stage it is 0", at.Add(-time.Minute), 0},
		{"in the first stage it is 1", at.Add(time.Minute), 1},
		{"in the second stage it is 2", at.Add(2 * time.Hour), 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(r.Evaluate("SN1", nil, tt.now))
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Stage *int `json:"stage"`
			}
			if err := json.Unmarshal(b, &got); err != nil || got.Stage == nil {
				t.Fatalf("eligibility JSON %s has no stage: %v", b, err)
			}
			if *got.Stage != tt.want {
				t.Fatalf("stage = %d in %s, want %d", *got.Stage, b, tt.want)
			}
		})
	}
}

func TestRolloutValidateChecksARolloutOnItsOwn(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 12, 1, h, 0, 0, 0, time.UTC) }
	for _, tt := range []struct {
		name string
		ro   Rollout
		want string // "" when valid
	}{
		{"a rollout with stages in order is valid", Rollout{ID: "r", Stages: []Stage{{At: at(1), Percent: 5}, {At: at(2), Percent: 100}}}, ""},
		{"a rollout without stages is valid (include and groups only)", Rollout{ID: "r", Include: []string{"SN1"}}, ""},
		{"a rollout without id is refused", Rollout{Stages: []Stage{{At: at(1), Percent: 5}}}, "rollout.id is missing"},
		{"a NaN percent is refused", Rollout{ID: "r", Stages: []Stage{{At: at(1), Percent: math.NaN()}}}, "rollout.stages[0].percent"},
		{"two stages at one time are refused", Rollout{ID: "r", Stages: []Stage{{At: at(1), Percent: 5}, {At: at(1), Percent: 50}}}, "rollout.stages[1].at must be later"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ro.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || CodeOf(err) != CodeMalformed {
				t.Fatalf("Validate() = %v, want a %s error saying %q", err, CodeMalformed, tt.want)
			}
		})
	}
}
