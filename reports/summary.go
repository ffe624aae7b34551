package reports

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fwagent/fwagent/manifest"
)

// State is where a device stands with a release, from its reports.
type State string

// Device states, from the result and step of a device's reports.
const (
	StateDownloading State = "downloading" // deciding, downloading, verifying, or waiting for a window
	StateInstalling  State = "installing"  // install, reboot or confirm under way
	StateConfirmed   State = "confirmed"   // installed and confirmed (result installed/success)
	// StateFailed: an attempt failed (result failed/failure) and no later
	// report confirmed an install, even if the device has since started
	// another attempt: a retry must not hide a failure from the failure rate.
	StateFailed  State = "failed"
	StateRefused State = "refused" // the device's policy refused the release (result refused)
)

// PilotStage is the Stage index of devices admitted before any stage
// opened: by the rollout's include list or groups.
const PilotStage = -1

// DeviceStatus is one device's standing with the release.
type DeviceStatus struct {
	Serial string
	Model  string
	// State is what the device counts as: StateFailed once an attempt
	// failed until a later report confirms an install; otherwise the state
	// of the latest report.
	State State
	// Latest is the state of the latest report alone; it differs from
	// State for a device that failed and is now retrying (or refusing).
	Latest State
	// FailureCodes are the reason codes of the failure State counts; nil
	// unless State is StateFailed.
	FailureCodes []string
	Step         string   // step of the latest report
	Codes        []string // reason codes of the latest report
	Message      string   // message of the latest report
	Bucket       int      // rollout bucket; -1 without rollout
	Stage        int      // stage the device is counted in (PilotStage: before any stage)
	FirstSeen    time.Time
	LastSeen     time.Time // receive times of the first and latest report
}

// Counts are device counts by state.
type Counts struct {
	Devices     int
	Downloading int
	Installing  int
	Confirmed   int
	Failed      int
	Refused     int
	// FailureCodes counts failed devices by reason code (a failure with
	// several codes counts once under each; without codes under "unknown").
	FailureCodes map[string]int
}

// Finished is the number of devices whose attempt ended in an install
// result: confirmed plus failed.
func (c Counts) Finished() int { return c.Confirmed + c.Failed }

// FailureRate is failed / (confirmed + failed) as a fraction; ok is false
// when no device finished (the rate is unknown, not zero).
func (c Counts) FailureRate() (rate float64, ok bool) {
	if c.Finished() == 0 {
		return 0, false
	}
	return float64(c.Failed) / float64(c.Finished()), true
}

func (c *Counts) add(d DeviceStatus) {
	c.Devices++
	switch d.State {
	case StateDownloading:
		c.Downloading++
	case StateInstalling:
		c.Installing++
	case StateConfirmed:
		c.Confirmed++
	case StateRefused:
		c.Refused++
	case StateFailed:
		c.Failed++
		if c.FailureCodes == nil {
			c.FailureCodes = map[string]int{}
		}
		if len(d.FailureCodes) == 0 {
			c.FailureCodes["unknown"]++
		}
		for _, code := range d.FailureCodes {
			c.FailureCodes[code]++
		}
	}
}

// StageSummary is one row of the status table.
type StageSummary struct {
	Index   int             // stage index; PilotStage for the include/groups row
	Stage   *manifest.Stage // nil for the pilot row
	Current bool            // the stage in force now
	Counts
}

// Summary is the state of one release's rollout, as reports tell it.
type Summary struct {
	ReleaseID string
	Rollout   *manifest.Rollout // nil: no rollout known (counts only)
	Now       time.Time
	// Current is the index of the stage in force at Now (PilotStage before
	// the first stage).
	Current int
	// Stages has the pilot row first, then one row per stage; empty
	// without rollout.
	Stages []StageSummary
	// Total counts every device that reported on the release.
	Total Counts
	// Devices lists each device's standing, by serial.
	Devices []DeviceStatus
	// Ignored counts records about other releases or about no release.
	Ignored int
}

// Summarize counts the devices that reported on release releaseID, each
// by its latest report (in receive order) for that release, except that a
// device whose attempt failed counts as failed until a later report
// confirms an install: a failed device that starts another attempt (and
// reports downloading) or then refuses the release stays failed, so
// retries cannot hide failures from the failure rate. With a rollout
// each device is counted in one stage: the lowest stage whose percent
// admits its bucket, unless it entered otherwise (its serial is in include,
// no stage admits its bucket, or its first report for the release was
// received before that stage opened: it came in through include or
// groups); such a device is counted in the stage in force when its first
// report was received, or in the pilot row before any stage.
func Summarize(records []Record, releaseID string, ro *manifest.Rollout, now time.Time) *Summary {
	s := &Summary{ReleaseID: releaseID, Rollout: ro, Now: now, Current: PilotStage}
	byserial := map[string]*DeviceStatus{}
	for _, rec := range records {
		r := rec.Report
		if r.ReleaseID != releaseID || r.DeviceSerial == "" {
			s.Ignored++
			continue
		}
		key := strings.TrimSpace(r.DeviceSerial) // exact, as the bucket rule uses it
		d := byserial[key]
		if d == nil {
			d = &DeviceStatus{Serial: strings.TrimSpace(r.DeviceSerial), FirstSeen: rec.Received}
			byserial[key] = d
		}
		if rec.Received.Before(d.FirstSeen) {
			d.FirstSeen = rec.Received
		}
		d.LastSeen = rec.Received
		d.Model, d.Step, d.Codes, d.Message = r.Model, r.Step, r.Codes, r.Message
		d.Latest = stateOf(r.Result, r.Step)
		switch {
		case d.Latest == StateFailed:
			d.State, d.FailureCodes = StateFailed, r.Codes
		case d.Latest == StateConfirmed:
			d.State, d.FailureCodes = StateConfirmed, nil
		case d.State != StateFailed:
			d.State = d.Latest
		}
	}
	if ro != nil {
		s.Current, _ = ro.Current(now)
		s.Stages = make([]StageSummary, len(ro.Stages)+1)
		s.Stages[0] = StageSummary{Index: PilotStage, Current: s.Current == PilotStage}
		for i := range ro.Stages {
			s.Stages[i+1] = StageSummary{Index: i, Stage: &ro.Stages[i], Current: s.Current == i}
		}
	}
	for _, d := range byserial {
		d.Bucket, d.Stage = -1, PilotStage
		if ro != nil {
			d.Bucket = manifest.Bucket(ro.ID, d.Serial)
			d.Stage = stageOf(ro, d)
			s.Stages[d.Stage+1].add(*d)
		}
		s.Total.add(*d)
		s.Devices = append(s.Devices, *d)
	}
	sort.Slice(s.Devices, func(i, j int) bool { return s.Devices[i].Serial < s.Devices[j].Serial })
	return s
}

// stateOf maps a report's result and step to a device state.
func stateOf(result, step string) State {
	switch result {
	case ResultInstalled, ResultSuccess:
		return StateConfirmed
	case ResultFailed, ResultFailure:
		return StateFailed
	case ResultRefused:
		return StateRefused
	}
	switch step {
	case "install", "reboot", "confirm", "report", "done":
		return StateInstalling
	}
	return StateDownloading
}

// stageOf attributes a device to a stage; see Summarize.
func stageOf(ro *manifest.Rollout, d *DeviceStatus) int {
	byBucket := PilotStage
	for i, st := range ro.Stages {
		if float64(d.Bucket) < st.Percent*100 {
			byBucket = i
			break
		}
	}
	included := false
	for _, s := range ro.Include {
		if strings.EqualFold(strings.TrimSpace(s), d.Serial) {
			included = true
		}
	}
	if byBucket != PilotStage && !included && !d.FirstSeen.Before(ro.Stages[byBucket].At) {
		return byBucket
	}
	cur, _ := ro.Current(d.FirstSeen)
	return cur
}

// CurrentStage returns the row of the stage in force at Now (the pilot row
// before the first stage), or nil without rollout.
func (s *Summary) CurrentStage() *StageSummary {
	if len(s.Stages) == 0 {
		return nil
	}
	return &s.Stages[s.Current+1]
}

// CheckAdvance decides whether the next stage may open: the current
// stage's devices must include at least minFinished finished ones
// (confirmed or failed) and their failure rate must not exceed
// maxPercent percent. A refusal wraps ErrAdvanceRefused and says why.
func (s *Summary) CheckAdvance(maxPercent float64, minFinished int) error {
	cur := s.CurrentStage()
	if cur == nil {
		return fmt.Errorf("release %s: %w", s.ReleaseID, ErrNoRollout)
	}
	name := s.StageName(cur.Index)
	if cur.Finished() < minFinished {
		return fmt.Errorf("%w: %s has %d finished device(s) (confirmed or failed), at least %d needed: wait for more reports (%d downloading, %d installing)",
			ErrAdvanceRefused, name, cur.Finished(), minFinished, cur.Downloading, cur.Installing)
	}
	if cur.Finished() > 0 && float64(cur.Failed)*100 > maxPercent*float64(cur.Finished()) {
		rate, _ := cur.FailureRate()
		return fmt.Errorf("%w: %s failure rate is %s (%d failed of %d finished), above the %g%% limit; failures: %s",
			ErrAdvanceRefused, name, FormatRate(rate, true), cur.Failed, cur.Finished(), maxPercent, FormatCodes(cur.FailureCodes))
	}
	return nil
}

// StageName names a stage for humans: "stage 2 (25%)" or "the pilot
// (before stage 1)".
func (s *Summary) StageName(index int) string {
	if index == PilotStage || s.Rollout == nil || index >= len(s.Rollout.Stages) {
		return "the pilot (include/groups, before stage 1)"
	}
	return fmt.Sprintf("stage %d (%g%%)", index+1, s.Rollout.Stages[index].Percent)
}

// FormatRate formats a failure rate as a percent with one decimal, or "-"
// when no device finished.
func FormatRate(rate float64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", rate*100)
}

// FormatCodes formats failure counts by code, most frequent first:
// "badFlash 3, download_failed 1".
func FormatCodes(codes map[string]int) string {
	if len(codes) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if codes[keys[i]] != codes[keys[j]] {
			return codes[keys[i]] > codes[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, codes[k])
	}
	return strings.Join(parts, ", ")
}
