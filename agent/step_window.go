package agent

import (
	"context"
	"fmt"

	"github.com/fwagent/fwagent/agent/journal"
)

// stateWaitWindow waits for a maintenance window (-> statePreflight, whose
// checks lead to stateInstall; or the end of the cycle until the window
// opens).
var stateWaitWindow = &state{
	name:    string(journal.StepWaitWindow),
	journal: journal.StepWaitWindow,
	run:     (*cycle).waitWindow,
	failures: failureTable{
		classLocal:  nextCycle,
		classBroken: quarantine,
	},
}

// waitWindow lets the install start only inside a maintenance window,
// unless the operator said --now.
func (c *cycle) waitWindow(ctx context.Context) (*state, error) {
	now := c.a.now()
	if c.mode == ModeUpdateNow || c.a.Config.InWindow(now) {
		return statePreflight, nil
	}
	next := c.a.Config.NextWindow(now)
	// Waiting is not a crash: the steps every waiting cycle passes again
	// do not count towards the crash-loop cap.
	if err := c.a.Journal.Update(func(s *journal.State) error {
		delete(s.Current.StepEntries, journal.StepVerify)
		delete(s.Current.StepEntries, journal.StepWaitWindow)
		return nil
	}); err != nil {
		return nil, failed(classLocal, CodeInternal, err)
	}
	c.out.Result = ResultWaiting
	c.out.NextWindow = next
	c.out.Message = fmt.Sprintf("release %s is downloaded and verified; the install waits for the next maintenance window at %s (use fwagent update --now to install now)", c.release.ID, next.Format("Mon 2006-01-02 15:04 MST"))
	c.log.Info(c.out.Message)
	return nil, nil
}
