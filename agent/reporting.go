package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/fwagent/fwagent/agent/audit"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/agent/support"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/fleet"
)

// report records a step change for the integrator.
func (c *cycle) report(step journal.Step, result string, codes []string, msg string) {
	if c.mode == ModeCheck {
		return
	}
	u := c.current()
	r := report.Report{Step: string(step), Result: result, Codes: codes, Message: msg}
	if u != nil {
		r.ReleaseID, r.AttemptID = u.ReleaseID, u.AttemptID
	}
	c.sendReport(r)
}

// sendReport queues r durably; the daemon flushes the queue.
func (c *cycle) sendReport(r report.Report) {
	a := c.a
	if a.Reports == nil || c.mode == ModeCheck {
		return
	}
	r.Time = a.now().UTC()
	r.DeviceSerial = reportSerial(c.id)
	r.Model = c.id.Model
	r.FirmwareVersion = c.id.FirmwareVersion
	if r.Version == "" && c.release != nil && r.ReleaseID == c.release.ID {
		r.Version = c.release.Version
	}
	r.AgentVersion = a.Version
	if a.Audit != nil {
		r.AuditSeq, r.AuditHead = a.Audit.Head()
	}
	// Reports leave the site: they carry no personal data (addresses,
	// user names) and no secret, and fit the protocol's limits, to the
	// fleet server as to report.url (whose reports file's reader, package
	// reports, refuses the same over-long or control-laden fields).
	r.Message = support.Redact(r.Message, false)
	fr := fleet.Report{Report: r}
	if changed := fr.Fit(); len(changed) > 0 {
		c.log.WithField("fields", strings.Join(changed, ",")).Info("a report's fields were fitted to the protocol's limits (an over-long or garbled value): it is sent cut or with replacement marks")
	}
	r = fr.Report
	if err := a.Reports.Enqueue(r); err != nil {
		c.log.WithError(err).Error("could not queue a report")
	}
}

// reportSerial names the device in reports, the fleet check-in and backup
// file names: its serial, or, for a device that reports none, a stable
// pseudonym of its MAC address (the MAC itself is personal data), so that
// its reports are still accepted and counted.
func reportSerial(id device.Identity) string {
	if s := strings.TrimSpace(id.Serial); s != "" {
		return s
	}
	if mac := strings.TrimSpace(id.Raw["macAddress"]); mac != "" {
		return macPseudonym(mac)
	}
	return "unknown-serial"
}

// macPseudonym is "mac-sha256:" and the first 16 hex digits of the
// SHA-256 of the lowercased MAC address: stable for one recorder, and not
// the address itself.
func macPseudonym(mac string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(mac))))
	return "mac-sha256:" + hex.EncodeToString(sum[:])[:16]
}

// audit appends e to the audit trail with the cycle's ids.
func (c *cycle) audit(e audit.Entry) {
	if c.a.Audit == nil || c.mode == ModeCheck {
		return
	}
	if e.Release == "" {
		e.Release = c.out.Release
	}
	if e.Attempt == "" {
		e.Attempt = c.out.Attempt
	}
	e.Time = c.a.now().UTC()
	if err := c.a.Audit.Append(e); err != nil {
		c.log.WithError(err).Error("could not append to the audit trail")
	}
}
