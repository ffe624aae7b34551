package manifest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Buckets is the number of rollout buckets: a device's bucket is in
// [0, Buckets), and a stage at p percent admits buckets below p*100.
const Buckets = 10000

// Rollout stages a release: devices become eligible as stages pass.
type Rollout struct {
	ID      string   `json:"id"`                // salts the buckets; changing it reshuffles devices
	Stages  []Stage  `json:"stages"`            // strictly increasing at, non-decreasing percent
	Paused  bool     `json:"paused,omitempty"`  // true: no device starts a new install
	Include []string `json:"include,omitempty"` // serials always eligible (unless excluded)
	Exclude []string `json:"exclude,omitempty"` // serials never eligible
	Groups  []string `json:"groups,omitempty"`  // device groups (agent config) always eligible
}

// Stage opens the release to Percent percent of devices from At on.
type Stage struct {
	At      time.Time `json:"at"`      // RFC 3339
	Percent float64   `json:"percent"` // 0-100
}

// Eligibility is a device's verdict for one rollout, with the figures that
// explain it (shown by `fwagent check` and `fwctl rollout preview`).
type Eligibility struct {
	Eligible bool    // the device may take the release (unless Paused)
	Bucket   int     // the device's bucket in [0, Buckets); -1 without rollout
	Percent  float64 // percent of the current stage (0 before the first, 100 without rollout)
	Stage    int     // index of the current stage; -1 before the first stage or without rollout
	Paused   bool    // the rollout is paused: start no new install, even if Eligible
	Reason   string  // one sentence: why
}

// MarshalJSON writes the eligibility for people and scripts (`fwagent check
// --json`, the status endpoint) with the stage numbered from 1, as every
// other output numbers it: "stage" is 0 before the first stage and without
// a rollout.
func (e Eligibility) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Eligible bool    `json:"eligible"`
		Bucket   int     `json:"bucket"`
		Percent  float64 `json:"percent"`
		Stage    int     `json:"stage"`
		Paused   bool    `json:"paused"`
		Reason   string  `json:"reason"`
	}{e.Eligible, e.Bucket, e.Percent, e.Stage + 1, e.Paused, e.Reason})
}

// Bucket returns a device's rollout bucket: the first 8 bytes of
// SHA-256(rolloutID + "/" + serial), read as a big-endian uint64, modulo
// Buckets. The same inputs give the same bucket on every device and in fwctl.
func Bucket(rolloutID, serial string) int {
	sum := sha256.Sum256([]byte(rolloutID + "/" + serial))
	return int(binary.BigEndian.Uint64(sum[:8]) % Buckets)
}

// Current returns the index of the latest stage whose At is not after now
// and its percent, or -1 and 0 before the first stage.
func (r *Rollout) Current(now time.Time) (stage int, percent float64) {
	stage = -1
	for i, s := range r.Stages {
		if s.At.After(now) {
			break
		}
		stage, percent = i, s.Percent
	}
	return stage, percent
}

// Evaluate decides whether the device with this serial, in these groups, is
// eligible at now. The serial is trimmed of surrounding spaces; list matches
// ignore case. Rules, in order: excluded -> not eligible; included or in one
// of the rollout's groups -> eligible; otherwise eligible when the bucket is
// below percent*100 of the latest stage whose at has passed. A nil Rollout
// (a release without rollout) is eligible for every device. Paused is only
// reported: the caller must start no new install while it is true.
func (r *Rollout) Evaluate(serial string, groups []string, now time.Time) Eligibility {
	if r == nil {
		return Eligibility{Eligible: true, Bucket: -1, Percent: 100, Stage: -1, Reason: "the release has no rollout: every matching device may take it"}
	}
	serial = strings.TrimSpace(serial)
	e := Eligibility{Bucket: Bucket(r.ID, serial), Paused: r.Paused}
	e.Stage, e.Percent = r.Current(now)
	switch {
	case containsFold(r.Exclude, serial):
		e.Reason = fmt.Sprintf("serial %s is in the rollout's exclude list", serial)
	case containsFold(r.Include, serial):
		e.Eligible, e.Reason = true, fmt.Sprintf("serial %s is in the rollout's include list", serial)
	case firstCommon(r.Groups, groups) != "":
		e.Eligible, e.Reason = true, fmt.Sprintf("the device is in rollout group %q", firstCommon(r.Groups, groups))
	case e.Stage < 0 && len(r.Stages) > 0:
		e.Reason = fmt.Sprintf("the rollout has not started: its first stage opens at %s", r.Stages[0].At.UTC().Format(time.RFC3339))
	case e.Stage < 0:
		e.Reason = "the rollout has no stage: only included serials and groups are eligible"
	case float64(e.Bucket) < e.Percent*100:
		e.Eligible, e.Reason = true, fmt.Sprintf("bucket %d is below %s (stage %d at %s%%)", e.Bucket, fmtFloat(e.Percent*100), e.Stage+1, fmtFloat(e.Percent))
	default:
		e.Reason = fmt.Sprintf("bucket %d is not below %s (stage %d at %s%%): wait for a later stage", e.Bucket, fmtFloat(e.Percent*100), e.Stage+1, fmtFloat(e.Percent))
	}
	if e.Paused {
		e.Reason += "; the rollout is paused: no new install starts"
	}
	return e
}

func fmtFloat(f float64) string { return fmt.Sprintf("%g", f) }

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

// firstCommon returns the first of want that appears in have (case folded).
func firstCommon(want, have []string) string {
	for _, w := range want {
		if containsFold(have, strings.TrimSpace(w)) {
			return w
		}
	}
	return ""
}

// Validate checks a rollout on its own as ParsePayload checks a release's
// (the fleet server uses it on a rollout fwctl fleet rollout sends): an id,
// stages in time order with percents from 0 to 100 that never decrease,
// and bounded lists.
func (r *Rollout) Validate() error {
	return r.validate("rollout")
}

func (r *Rollout) validate(where string) error {
	if err := checkID(where+".id", r.ID); err != nil {
		return err
	}
	if len(r.Stages) > maxListItems {
		return newError(CodeTooLarge, nil, "%s.stages has %d entries, the limit is %d", where, len(r.Stages), maxListItems)
	}
	for i, s := range r.Stages {
		f := fmt.Sprintf("%s.stages[%d]", where, i)
		if s.At.IsZero() {
			return malformed(f+".at", "is missing: write an RFC 3339 time")
		}
		if math.IsNaN(s.Percent) || s.Percent < 0 || s.Percent > 100 {
			return malformed(f+".percent", fmt.Sprintf("%g must be between 0 and 100", s.Percent))
		}
		if i > 0 {
			p := r.Stages[i-1]
			if !s.At.After(p.At) {
				return malformed(f+".at", "must be later than the previous stage's at: list stages in time order")
			}
			if s.Percent < p.Percent {
				return malformed(f+".percent", fmt.Sprintf("%g is below the previous stage's %g: a rollout never shrinks (use exclude or pause)", s.Percent, p.Percent))
			}
		}
	}
	lists := []struct {
		name  string
		items []string
	}{{"include", r.Include}, {"exclude", r.Exclude}, {"groups", r.Groups}}
	for _, l := range lists {
		if err := checkList(where+"."+l.name, l.items, maxModelLen); err != nil {
			return err
		}
	}
	return nil
}
