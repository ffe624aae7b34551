package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// state is one step of the cycle: it does its work and returns the next
// state, or nil when the cycle is over. Each state is declared in its
// step_*.go file next to its code, with its failure table.
type state struct {
	// name is the step's name in logs (the "step" field) and docs: the
	// journal step's name where there is one.
	name string
	// journal names the step persisted before the state runs ("" for the
	// steps that change nothing and are simply run again, and for states
	// that continue the journal step before them).
	journal journal.Step
	run     func(c *cycle, ctx context.Context) (*state, error)
	// device marks the device steps: once started they run to their end
	// (bounded by the backend's timeouts) even when the agent is asked to
	// stop, so a stop never leaves the device half-way through a step the
	// agent could have finished.
	device bool
	// sent marks the steps that run after the image reached the device: a
	// failure there is a failed install (Outcome.InstallFailed).
	sent bool
	// retries says what the step retries within the cycle before it fails
	// (docs only: the retrying happens in the step's own code).
	retries string
	// failures says what each class of failure of this step does. Every
	// failure of the step, whatever its source, goes through it.
	failures failureTable
}

// allStates lists every state in cycle order (docs and tests).
func allStates() []*state {
	return []*state{stateResume, stateSettle, stateIdentify, stateFetch, stateDecide, stateDownload,
		stateVerify, stateWaitWindow, statePreflight, stateInstall, stateFlash, stateReboot, stateConfirm}
}

// cycle is the working memory of one pass through the states.
type cycle struct {
	a    *Agent
	mode Mode
	log  logrus.FieldLogger
	out  *Outcome

	id       device.Identity
	verified *manifest.Verified
	release  *manifest.Release // the chosen release
	facts    verify.ImageFacts
	onDevice bool             // a device step has started: finish them before stopping
	settled  bool             // settle found a finished flash after a stop and sent it to reboot
	seen     *device.Identity // settle already asked the device what it runs: confirm uses it
	flashing bool             // the device reported flashing this cycle's image
	// releaseInstall gives back the site's install slot (InstallGate).
	releaseInstall func(Outcome)
	// imageUnlock gives back the image's read lock, held from install's
	// proof through the upload (holdImage).
	imageUnlock func()
	// pre is what the site's identify-all pass learnt before this cycle.
	pre *preIdentity
}

// Cycle runs one pass of the update cycle in the given mode and returns what
// it found and did. It never panics on bad input: every error ends in the
// one failure path, which looks its class up in the failing step's table,
// records it and reports it.
func (a *Agent) Cycle(ctx context.Context, mode Mode) Outcome {
	c := &cycle{a: a, mode: mode, log: a.Log, out: &Outcome{}}
	s := stateResume
	if mode == ModeCheck {
		s = stateIdentify
	}
	// The daemon never repeats a login the device refused: recorders lock
	// the account after a few. An operator's explicit run tries once.
	if r := a.credentialsRefused(); r != nil && mode == ModeUpdate {
		err := credentialsError(r, a.Name)
		c.out.Result, c.out.Err, c.out.Message = ResultFailed, err, err.Error()
		c.out.Codes = []string{CodeCredentialsRefused}
		c.log.Warn(c.out.Message)
		c.checkInUnanswered(ctx)
		c.out.Finished = a.now()
		out := *c.out
		a.setStatus(func(st *Status) { st.LastCycle = &out })
		a.recordCycle(mode, out)
		return out
	}
	// A recorder the site's identify-all pass found unreachable or refused
	// (duplicate_recorder) fails at identify before any step touches it.
	if c.pre = a.takePre(); c.pre != nil && c.pre.err != nil {
		s = stateIdentify
	}
	for s != nil {
		a.ids.setStep(s.name)
		c.log = c.log.WithField("step", s.name)
		if ctx.Err() != nil && !(s.device && c.onDevice) {
			c.fail(ctx, s, ctx.Err())
			break
		}
		// The site's install slot is taken before the install step is
		// entered: a recorder waiting for it, held, or stopped while
		// waiting has sent nothing, and its journal must not say install
		// (the next start would settle an upload that never happened as an
		// interrupted install, a counted attempt).
		if s.device && !c.onDevice {
			if held, err := c.acquireInstall(ctx, s.journal); held || err != nil {
				if err != nil {
					c.fail(ctx, s, err)
				}
				break
			}
		}
		// The fleet server's hold too, after the slot: a pause made while
		// the recorder waited for its slot still stops the upload. A held
		// upload leaves the journal where verify left it (the slot goes
		// back with the cycle's outcome, below).
		if s.device && !c.onDevice {
			if held, err := c.fleetHoldsUpload(ctx, s.journal); held || err != nil {
				if err != nil {
					c.fail(ctx, s, err)
				}
				break
			}
			// A stop that came while waiting for the slot or checking in
			// (the check-in then failed) ends the cycle here, the last
			// safe point: past it the device steps run to their end.
			if ctx.Err() != nil {
				c.fail(ctx, s, ctx.Err())
				break
			}
		}
		if s.journal != "" {
			if err := c.enter(s.journal); err != nil {
				c.fail(ctx, s, err)
				break
			}
		}
		runCtx := ctx
		if s.device {
			c.onDevice = true
			runCtx = context.WithoutCancel(ctx)
		}
		next, err := s.run(c, runCtx)
		if err != nil {
			c.fail(ctx, s, err)
			break
		}
		s = next
	}
	c.releaseImage()
	if c.releaseInstall != nil {
		c.releaseInstall(*c.out)
	}
	// An attempt that ended is told to the fleet server at once, not at
	// the next interval: its state changes when the device's does.
	if (c.out.Result == ResultInstalled || c.out.Result == ResultFailed) && c.id.Model != "" && ctx.Err() == nil {
		c.checkIn(ctx, true)
	} else if c.out.Identity == nil {
		// The recorder did not answer (identify, or settle before it):
		// the server hears that the agent is alive all the same.
		c.checkInUnanswered(ctx)
	}
	a.ids.set("", "")
	a.ids.setStep("")
	c.out.Finished = a.now()
	out := *c.out
	a.setStatus(func(st *Status) { st.LastCycle = &out })
	a.recordCycle(mode, out)
	return out
}

// recordCycle keeps how an update cycle ended in the journal, so that
// fwagent status shows a cycle that failed before any update started
// (refused credentials, an unreachable recorder) after the agent exited.
// A check changes nothing, so it records nothing; a cycle stopped by the
// context keeps the previous outcome (it resumes, it did not end).
func (a *Agent) recordCycle(mode Mode, out Outcome) {
	if mode == ModeCheck || out.Result == ResultStopped || a.Journal == nil {
		return
	}
	err := a.Journal.RecordCycle(journal.Cycle{
		Result: string(out.Result), Codes: out.Codes, Message: out.Message,
		Release: out.Release, Step: out.Step, Finished: out.Finished.UTC(),
	})
	if err != nil {
		a.Log.WithError(err).Warn("cannot record the cycle's outcome in the journal")
	}
}

// enter persists step as the current update's step before it runs and ends
// crash loops: a step entered too often fails the update.
func (c *cycle) enter(step journal.Step) error {
	n, err := c.a.Journal.EnterStep(step)
	if err != nil {
		return failed(classBroken, CodeInternal, fmt.Errorf("record step %s in the journal: %w", step, err))
	}
	if n > c.a.maxStepEntries() {
		return failed(classBroken, CodeCrashLoop, fmt.Errorf("step %s was entered %d times in this attempt: giving up instead of looping; see the agent log for the earlier failures", step, n))
	}
	c.report(step, "", nil, "")
	if c.a.beforeStep != nil {
		if err := c.a.beforeStep(step); err != nil {
			return &halted{step: step, err: err}
		}
	}
	return nil
}

func (c *cycle) current() *journal.Update {
	return c.a.Journal.State().Current
}

// withAttempt makes every log line of the cycle carry the update's ids.
func (c *cycle) withAttempt(u *journal.Update) {
	c.log = c.log.WithFields(logrus.Fields{"release": u.ReleaseID, "attempt": u.AttemptID})
	c.a.ids.set(u.ReleaseID, u.AttemptID)
	c.out.Release = u.ReleaseID
	c.out.Attempt = u.AttemptID
}

// abandon drops an update without counting a failure (the manifest moved
// on); its image is removed.
func (c *cycle) abandon(u *journal.Update, why string) {
	c.log.WithField("release", u.ReleaseID).Info("update abandoned: " + why)
	_ = c.a.dropImage(u.ImagePath)
	_ = c.a.Journal.Finish(journal.Result{Outcome: journal.OutcomeNothing, Message: "abandoned: " + why})
}

// fail is the one failure path: it classifies err, asks the failing step's
// table what that class does, counts the attempt, quarantines the release
// when the table says so or the attempts are used up, and records, audits
// and reports the failure.
func (c *cycle) fail(ctx context.Context, s *state, err error) {
	a := c.a
	var h *halted
	if errors.As(err, &h) {
		// A test seam stopped the agent as a crash would: nothing more is
		// recorded.
		c.out.Result = ResultStopped
		c.out.Err = h
		c.out.Message = h.Error()
		return
	}
	if stopped(ctx, err) {
		c.out.Result = ResultStopped
		c.out.Message = "stopped at a safe point; the journal resumes the update on the next start"
		c.log.Info(c.out.Message)
		return
	}
	f := classify(err)
	act := s.failures.actionFor(f.class)
	class, codes := f.journalClass(), f.codes
	if c.protectedUnresponsive(err) {
		codes = append([]string{CodeProtectedUnresponsive}, codes...)
		err = protectedUnresponsiveError(c.id, err)
	}
	if c.mode != ModeCheck {
		a.noteCredentials(codes, false)
	}
	c.out.Result = ResultFailed
	c.out.Err = err
	c.out.Codes = codes
	c.out.Message = err.Error()
	c.out.Transient = !f.fatal
	c.out.InstallFailed = s.sent
	if a.Metrics != nil {
		for _, code := range codes {
			a.Metrics.Result(string(ResultFailed), code)
		}
	}
	u := c.current()
	if u == nil || c.mode == ModeCheck {
		c.log.WithError(err).WithFields(logrus.Fields{"codes": codes, "class": class, "failure": f.class.String()}).Error("cycle failed")
		if c.mode != ModeCheck {
			c.sendReport(report.Report{Step: "cycle", Result: string(ResultFailed), Codes: codes, Message: err.Error()})
		}
		return
	}
	c.out.Step = string(u.Step)
	attemptOver := act != nextCycle
	quarantined := act == quarantine || (act == newAttempt && u.Attempts >= a.Config.MaxAttempts)
	fields := logrus.Fields{"codes": codes, "class": class, "failure": f.class.String(), "action": act.String(), "step": u.Step, "attempt_number": u.Attempts}
	c.log.WithError(err).WithFields(fields).Error("update attempt failed")
	c.audit(audit.Entry{Event: audit.EventFailed, Codes: codes, Message: err.Error()})
	c.sendReport(report.Report{ReleaseID: u.ReleaseID, AttemptID: u.AttemptID, Step: string(u.Step), Result: string(ResultFailed), Codes: codes, Message: err.Error()})
	st := s
	uerr := a.Journal.Update(func(s *journal.State) error {
		if attemptOver {
			if s.Attempts == nil {
				s.Attempts = map[string]int{}
			}
			s.Attempts[u.ReleaseID] = u.Attempts
		}
		if !attemptOver && st == stateInstall {
			keepAtWindow(s)
		}
		s.Current.LastError = err.Error()
		s.Current.ErrorClass = class
		s.Current.Codes = codes
		if quarantined {
			if s.Quarantine == nil {
				s.Quarantine = map[string]journal.Quarantine{}
			}
			s.Quarantine[u.ReleaseID] = journal.Quarantine{Serial: u.Serial, Reason: fmt.Sprintf("%s after %d attempt(s): %v", class, u.Attempts, codes), At: a.now().UTC()}
		}
		return nil
	})
	if uerr != nil {
		c.log.WithError(uerr).Error("could not record the failure in the journal")
	}
	if quarantined {
		_ = a.dropImage(u.ImagePath)
		msg := fmt.Sprintf("release %s quarantined until a manifest with a serial above %d arrives", u.ReleaseID, u.Serial)
		c.log.Warn(msg)
		c.audit(audit.Entry{Event: audit.EventQuarantined, Codes: codes, Message: msg})
	}
	if attemptOver {
		if ferr := a.Journal.Finish(journal.Result{Outcome: journal.OutcomeFailure, Codes: codes, Message: err.Error(), ErrorClass: class}); ferr != nil {
			c.log.WithError(ferr).Error("could not record the result in the journal")
		}
	}
}

// keepAtWindow moves an update whose install step ended before anything
// was sent (a failure of the pre-check) back to
// wait_window: the next cycle proves the image again and installs, instead
// of settling an upload that never happened as an interrupted install (a
// failed attempt).
func keepAtWindow(s *journal.State) {
	if s.Current != nil && s.Current.Step == journal.StepInstall {
		s.Current.Step = journal.StepWaitWindow
		delete(s.Current.StepEntries, journal.StepInstall)
	}
}

// holdImage takes the image's read lock (a site's shared cache; a no-op
// otherwise) until releaseImage or the end of the cycle.
func (c *cycle) holdImage(sha string) {
	c.releaseImage()
	c.imageUnlock = c.a.lockImage(sha, false)
}

// releaseImage gives back the lock holdImage took, if any.
func (c *cycle) releaseImage() {
	if c.imageUnlock != nil {
		c.imageUnlock()
		c.imageUnlock = nil
	}
}

// forgetHeldSteps is for an install held before it started (by the fleet
// server or the site's install slot): holding is not a crash, so the steps
// each held cycle passes again do not count towards the crash-loop cap.
func (c *cycle) forgetHeldSteps() error {
	err := c.a.Journal.Update(func(s *journal.State) error {
		if s.Current != nil {
			delete(s.Current.StepEntries, journal.StepVerify)
			delete(s.Current.StepEntries, journal.StepWaitWindow)
		}
		return nil
	})
	if err != nil {
		return failed(classLocal, CodeInternal, err)
	}
	return nil
}
