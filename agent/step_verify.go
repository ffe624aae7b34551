package agent

import (
	"context"
	"fmt"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/verify"
)

// stateVerify applies every policy rule to the downloaded image (->
// stateWaitWindow). An image whose SHA-256 matches the signed manifest but
// that the policy refuses is evidence about the release itself.
var stateVerify = &state{
	name:    string(journal.StepVerify),
	journal: journal.StepVerify,
	run:     (*cycle).verifyImage,
	failures: failureTable{
		classRefused: quarantine,
		classLocal:   nextCycle,
		classBroken:  quarantine,
	},
}

// verifyImage applies every policy rule to the staged image.
func (c *cycle) verifyImage(ctx context.Context) (*state, error) {
	d := verify.DecideImage(c.id, c.release.Target(), c.facts, c.a.policy(), c.verified.Evidence())
	if !d.Allowed {
		return nil, &refusal{decision: d, what: "after download"}
	}
	u := c.current()
	if !u.Verified {
		c.log.WithField("sha256", c.facts.SHA256).Info("image verified: size, SHA-256, format and policy")
		c.audit(audit.Entry{Event: audit.EventDownloadVerified, Message: fmt.Sprintf("%d bytes, sha256 %s", c.facts.Size, c.facts.SHA256)})
		if err := c.a.Journal.Update(func(s *journal.State) error {
			s.Current.Verified = true
			return nil
		}); err != nil {
			return nil, failed(classLocal, CodeInternal, err)
		}
	}
	return stateWaitWindow, nil
}
