package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/reports"
)

// ActorAutoPause is the actor of the pauses the server makes on its own.
const ActorAutoPause = "auto-pause"

// autoQueue holds the releases waiting for an auto-pause check. Checks
// run one at a time in one goroutine, and requests for a release already
// waiting collapse into one: a flood of results costs one count of the
// release per check, not one per report.
//
// A check reads every report of the release (14 µs a report alone; 2.3 to
// 3.8 s for 70,000 to 85,000 reports while reports arrive at 3,000/s), so a
// release is not checked again before autoPauseSpacing times the duration
// of its last check has passed: the checker uses at most a tenth of one
// core however fast reports arrive, and a release whose check takes 3 s is
// still checked every 30 s.
type autoQueue struct {
	mu        sync.Mutex
	cond      *sync.Cond
	pending   map[string]bool
	notBefore map[string]time.Time // per release, on the real clock
	busy      bool
	closed    bool
	timer     *time.Timer // wakes the checker for the next deferred check
	// resumes counts each release's resumes on this server, so that a
	// check that began before a resume does not pause on what the
	// operator just judged; resumeMu orders a resume against the pause
	// that ends such a check.
	resumes  map[string]uint64
	resumeMu sync.Mutex
}

// resumed forgets the checks of releaseID asked for before its resume
// (made while it was paused, or just before: what the operator resumed
// it on) and marks a check now running as begun before it. The next
// finished install asks for a new check. Called with q.resumeMu held.
func (q *autoQueue) resumed(releaseID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.pending, releaseID)
	if q.resumes == nil {
		q.resumes = map[string]uint64{}
	}
	q.resumes[releaseID]++
}

// resumesOf returns how often releaseID was resumed on this server.
func (q *autoQueue) resumesOf(releaseID string) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.resumes[releaseID]
}

// autoPauseSpacing is the wait after a check, in durations of that check.
const autoPauseSpacing = 9

// queueAutoPause asks for a check of releaseID (when auto-pause is on).
func (s *Server) queueAutoPause(releaseID string) {
	if s.opt.MaxFailureRate <= 0 {
		return
	}
	s.auto.mu.Lock()
	s.auto.pending[releaseID] = true
	s.auto.cond.Broadcast()
	s.auto.mu.Unlock()
}

// next returns a pending release whose check may run now, or how long
// until one may. It is called with q.mu held.
func (q *autoQueue) next(now time.Time) (id string, wait time.Duration) {
	for k := range q.pending {
		nb, ok := q.notBefore[k]
		if !ok || !now.Before(nb) {
			return k, 0
		}
		if d := nb.Sub(now); wait == 0 || d < wait {
			wait = d
		}
	}
	return "", wait
}

// autoPauser runs the queued checks until Close.
func (s *Server) autoPauser() {
	defer s.wg.Done()
	q := &s.auto
	for {
		q.mu.Lock()
		var id string
		for !q.closed {
			var wait time.Duration
			if id, wait = q.next(time.Now()); id != "" {
				break
			}
			if q.timer != nil {
				q.timer.Stop()
				q.timer = nil
			}
			if wait > 0 {
				q.timer = time.AfterFunc(wait, func() {
					q.mu.Lock()
					q.cond.Broadcast()
					q.mu.Unlock()
				})
			}
			q.cond.Wait()
		}
		if q.closed {
			if q.timer != nil {
				q.timer.Stop()
			}
			q.mu.Unlock()
			return
		}
		delete(q.pending, id)
		q.busy = true
		resumes := q.resumes[id]
		q.mu.Unlock()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s.checkAutoPause(ctx, id, resumes)
		cancel()
		took := time.Since(start)
		q.mu.Lock()
		q.notBefore[id] = time.Now().Add(autoPauseSpacing * took)
		q.busy = false
		q.cond.Broadcast()
		q.mu.Unlock()
	}
}

// AutoPauseSettled waits until every auto-pause check asked for so far has
// run (tests; an operator sees the result in the pause log).
func (s *Server) AutoPauseSettled() {
	q := &s.auto
	q.mu.Lock()
	defer q.mu.Unlock()
	for (len(q.pending) > 0 || q.busy) && !q.closed {
		q.cond.Wait()
	}
}

// checkAutoPause pauses release when its current stage (every device that
// reported, without a rollout) has at least MinInstalls finished installs
// (confirmed or failed) and a failure rate above MaxFailureRate. Only
// signed, verified reports are in the store; the counting rules are the
// ones fwctl rollout status and advance use (reports.Summarize).
//
// resumes is how often the release had been resumed on this server when
// the check began: a resume made since wins, and the check pauses
// nothing.
func (s *Server) checkAutoPause(ctx context.Context, releaseID string, resumes uint64) {
	if s.opt.MaxFailureRate <= 0 {
		return
	}
	paused, cause, err := s.autoPauseCause(ctx, releaseID)
	if err != nil {
		s.log.WithError(err).WithField("release", releaseID).Error("auto-pause check failed")
		return
	}
	if paused || cause == "" {
		return
	}
	s.auto.resumeMu.Lock()
	if s.auto.resumesOf(releaseID) != resumes {
		s.auto.resumeMu.Unlock()
		s.log.WithField("release", releaseID).Info("auto-pause check: the release was resumed while it ran; not paused on what it read")
		return
	}
	changed, err := s.setPaused(ctx, releaseID, true, ActorAutoPause, cause)
	s.auto.resumeMu.Unlock()
	if err != nil {
		s.log.WithError(err).WithField("release", releaseID).Error("auto-pause failed")
		return
	}
	if changed {
		_ = s.store.Update(ctx, func(tx fleet.Tx) error {
			return tx.AddCounters(ctx, map[string]int64{fleet.CounterAutoPauses: 1})
		})
	}
}

// autoPauseCause returns why the release must be paused ("" if not), or
// paused true if it already is.
func (s *Server) autoPauseCause(ctx context.Context, releaseID string) (paused bool, cause string, err error) {
	start := time.Now()
	var rel fleet.Release
	err = s.store.Update(ctx, func(tx fleet.Tx) error {
		var err error
		rel, err = tx.ReleaseForUpdate(ctx, releaseID)
		return err
	})
	if err != nil && !errors.Is(err, fleet.ErrNotFound) {
		return false, "", err
	}
	if rel.Paused {
		return true, "", nil
	}
	recs, err := s.store.Reports(ctx, releaseID)
	if err != nil {
		return false, "", err
	}
	records := make([]reports.Record, len(recs))
	for i, r := range recs {
		records[i] = ToRecord(r)
	}
	sum := reports.Summarize(records, releaseID, rel.Rollout, s.Now())
	defer func(start time.Time) {
		s.log.WithFields(logrus.Fields{"release": releaseID, "reports": len(recs), "took": time.Since(start).Round(time.Millisecond)}).Info("auto-pause check")
	}(start)
	counts, name := sum.Total, "all devices (no rollout known)"
	if cur := sum.CurrentStage(); cur != nil {
		counts, name = cur.Counts, sum.StageName(cur.Index)
	}
	if counts.Finished() < s.opt.MinInstalls || counts.Finished() == 0 {
		return false, "", nil
	}
	rate, _ := counts.FailureRate()
	if rate <= s.opt.MaxFailureRate {
		return false, "", nil
	}
	return false, fmt.Sprintf("%s: %d failed of %d finished (%s), above the %g%% limit; failures: %s",
		name, counts.Failed, counts.Finished(), reports.FormatRate(rate, true), s.opt.MaxFailureRate*100, reports.FormatCodes(counts.FailureCodes)), nil
}
