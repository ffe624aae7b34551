package agent

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/fwagent/fwagent/agent/journal"
)

// Run is the daemon: it runs a cycle, flushes reports, sleeps until the next
// poll (with jitter), a maintenance window or a retry, and does it again
// until ctx ends. Cancelling ctx (SIGTERM) stops it at a safe point: the
// device steps of an install are finished first, and the journal resumes
// whatever remains on the next start.
func (a *Agent) Run(ctx context.Context) error {
	a.restoreLastSuccess()
	stopWatchdog := a.startWatchdog(ctx)
	defer stopWatchdog()
	if a.ReadyHook != nil {
		a.ReadyHook()
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	failures := 0
	for {
		out := a.Cycle(ctx, ModeUpdate)
		a.FlushReports(ctx)
		if ctx.Err() != nil {
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			return nil
		}
		if out.Result == ResultFailed {
			failures++
		} else {
			failures = 0
		}
		wait := a.nextWait(out, failures)
		next := a.now().Add(wait)
		a.setStatus(func(s *Status) { s.NextPoll = next })
		a.Log.WithField("next_poll", next.Format(time.RFC3339)).Debug("sleeping until the next cycle")
		select {
		case <-ctx.Done():
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			return nil
		case <-a.after(wait):
		}
	}
}

// retryBase is the first pause after a failed cycle; it doubles with each
// consecutive failure up to the poll interval.
const retryBase = time.Minute

// nextWait is how long the daemon sleeps after a cycle with this outcome.
func (a *Agent) nextWait(out Outcome, failures int) time.Duration {
	poll := a.Config.Poll
	wait := poll.Interval + a.jitter(poll.Jitter)
	if out.Result == ResultFailed && out.Transient {
		backoff := retryBase << min(failures-1, 16)
		if backoff < wait {
			wait = backoff + a.jitter(backoff/2)
		}
	}
	if out.Result == ResultWaiting && !out.NextWindow.IsZero() {
		// Wake when the window opens, spread over its first minutes so a
		// fleet does not hit the network at the same second.
		until := out.NextWindow.Sub(a.now()) + a.jitter(5*time.Minute)
		if until > 0 && until < wait {
			wait = until
		}
	}
	return max(wait, time.Second)
}

// longestSleep is the longest the daemon sleeps between two cycles:
// poll.interval plus the whole of poll.jitter (nextWait only ever shortens
// that, for a retry or a maintenance window). A site's daemon sleeps the
// shortest wait of its recorders, so the bound holds for each of them.
func (a *Agent) longestSleep() time.Duration {
	return max(a.Config.Poll.Interval+a.Config.Poll.Jitter, time.Second)
}

// startWatchdog pings systemd's watchdog at half its interval while ctx
// lives, when the service has WatchdogSec set.
func (a *Agent) startWatchdog(ctx context.Context) func() {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}()
	return cancel
}

// restoreLastSuccess sets the last-success metric from the journal's
// history, so that fwagent_last_success_timestamp_seconds does not read 0
// after a restart when the agent knows when it last installed.
func (a *Agent) restoreLastSuccess() {
	if a.Metrics == nil || a.Journal == nil {
		return
	}
	hist, err := a.Journal.History(0)
	if err != nil {
		a.Log.WithError(err).Warn("could not read the history for the last-success metric")
	}
	if r := a.Journal.State().LastResult; r != nil {
		hist = append(hist, *r)
	}
	var last time.Time
	for _, r := range hist {
		if r.Outcome == journal.OutcomeSuccess && r.Finished.After(last) {
			last = r.Finished
		}
	}
	if !last.IsZero() {
		a.Metrics.SetLastSuccess(last)
	}
}
