package agent

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fwagent/fwagent/agent/fetch"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/manifest"
	"github.com/fwagent/fwagent/verify"
)

// class says what a failure is evidence of. It is decided where the failure
// happens (from the typed error of the package that failed, never from a
// message); the step that failed then looks the class up in its failure
// table, which says what happens next.
type class uint8

// Failure classes, in the order the docs list them.
const (
	// classUnavailable: the device, the network or a server did not answer
	// (in time), or answered "busy". It may heal by itself.
	classUnavailable class = iota + 1
	// classServer: a server answered wrongly (an error status, a
	// Content-Range that is not what was asked, a body of the wrong length
	// from one mirror). A misbehaving server or proxy is not evidence
	// against the release.
	classServer
	// classLocal: this host or the agent itself (a full disk, a state file
	// that cannot be written, an unexpected error).
	classLocal
	// classManifest: the signed manifest was refused (signature, expiry,
	// rollback, ...). It says nothing about the release in progress.
	classManifest
	// classRefused: the safety policy refused the release, its image, or
	// what the device reports after the install.
	classRefused
	// classImage: evidence about the image itself: every mirror served a
	// complete body that contradicts the signed size or SHA-256.
	classImage
	// classDevice: the device refused (credentials, device type) or never
	// finished (flash timeout).
	classDevice
	// classInterrupted: the install did not take: the device still runs the
	// old firmware and is not flashing, or holds an image this attempt did
	// not send.
	classInterrupted
	// classChanged: the device or the staged image changed under the update.
	classChanged
	// classBroken: the journal cannot record the step, or a step was entered
	// too often (a crash loop).
	classBroken
)

var classNames = map[class]string{
	classUnavailable: "unavailable",
	classServer:      "server",
	classLocal:       "local",
	classManifest:    "manifest",
	classRefused:     "refused",
	classImage:       "image",
	classDevice:      "device",
	classInterrupted: "interrupted",
	classChanged:     "changed",
	classBroken:      "broken",
}

var classDocs = map[class]string{
	classUnavailable: "the device, the network or a server did not answer (in time), or is busy",
	classServer:      "a server answered wrongly (error status, wrong Content-Range, wrong length from one mirror): not evidence against the release",
	classLocal:       "this host or the agent itself: a full disk, a state file that cannot be written",
	classManifest:    "the signed manifest was refused (signature, expiry, rollback, ...)",
	classRefused:     "the safety policy refused the release, its image, or what the device reports after the install",
	classImage:       "evidence about the image itself: every mirror served a complete body contradicting the signed size or SHA-256",
	classDevice:      "the device refused (credentials, device type) or never finished flashing",
	classInterrupted: "the install did not take (old firmware, not flashing) or the device holds an image this attempt did not send",
	classChanged:     "the device or the staged image changed under the update",
	classBroken:      "the journal cannot record the step, or the step was entered too often (crash loop)",
}

func (c class) String() string { return classNames[c] }

// classes lists every class in documentation order.
func classes() []class {
	out := make([]class, 0, len(classNames))
	for c := classUnavailable; c <= classBroken; c++ {
		out = append(out, c)
	}
	return out
}

// fatalByDefault reports whether the class is recorded as fatal (no quick
// retry by the daemon) when the failing package does not say otherwise.
func (c class) fatalByDefault() bool {
	switch c {
	case classManifest, classRefused, classImage, classDevice, classBroken:
		return true
	}
	return false
}

// action is what a step's failure table makes of a class of failure.
type action uint8

// Actions, from the mildest.
const (
	// nextCycle: retry next cycle. The update in progress stays in the
	// journal at this step and the next cycle runs it again (the step
	// re-entry cap bounds that); with no update in progress the cycle just
	// fails.
	nextCycle action = iota + 1
	// newAttempt: this attempt ends and counts towards max_attempts; the
	// next cycle starts a new one, and once max_attempts are used up the
	// release is quarantined.
	newAttempt
	// quarantine: the attempt ends and the release is quarantined until a
	// manifest with a higher serial arrives.
	quarantine
)

var actionNames = map[action]string{
	nextCycle:  "next cycle",
	newAttempt: "new attempt",
	quarantine: "quarantine",
}

var actionDocs = map[action]string{
	nextCycle:  "retry next cycle: the update stays in the journal at this step (with none in progress the cycle just fails)",
	newAttempt: "the attempt ends and counts; the next cycle starts a new one; after max_attempts the release is quarantined",
	quarantine: "the attempt ends and the release is quarantined until a manifest with a higher serial",
}

func (a action) String() string { return actionNames[a] }

// failureTable is one step's answer to each class of failure.
type failureTable map[class]action

// actionFor returns what the table says for c. A class a table does not
// list (it should not happen in that step) quarantines when it is fatal by
// default and retries next cycle otherwise.
func (t failureTable) actionFor(c class) action {
	if a, ok := t[c]; ok {
		return a
	}
	if c.fatalByDefault() {
		return quarantine
	}
	return nextCycle
}

// failure is an error classified where it happened.
type failure struct {
	class class
	fatal bool // recorded as journal.ClassFatal: the daemon waits a full poll interval
	codes []string
	err   error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// fail classifies err as c with code.
func failed(c class, code string, err error) error {
	return &failure{class: c, fatal: c.fatalByDefault(), codes: []string{code}, err: err}
}

// reclassed keeps err's codes and fatality but gives it class c: a step that
// knows better what err means for it (settle: the device did not answer, so
// nothing is known) says so.
func reclassed(c class, err error) error {
	f := classify(err)
	return &failure{class: c, fatal: c.fatalByDefault(), codes: f.codes, err: err}
}

// journalClass is the class recorded in the journal and reports.
func (f *failure) journalClass() string {
	if f.fatal {
		return journal.ClassFatal
	}
	return journal.ClassTransient
}

// halted is the cycle stopped by the beforeStep test seam, as a crash would
// stop it.
type halted struct {
	step journal.Step
	err  error
}

func (h *halted) Error() string {
	return "halted before step " + string(h.step) + ": " + h.err.Error()
}
func (h *halted) Unwrap() error { return h.err }

// refusal is a policy Decision that said no.
type refusal struct {
	decision verify.Decision
	what     string // "before download", "after download", ...
}

func (r *refusal) Error() string {
	msgs := make([]string, 0, len(r.decision.Reasons))
	for _, reason := range r.decision.Reasons {
		msgs = append(msgs, string(reason.Code)+": "+reason.Message)
	}
	return "refused " + r.what + ": " + strings.Join(msgs, "; ")
}

func decisionCodes(d verify.Decision) []string {
	codes := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		codes = append(codes, string(r.Code))
	}
	return codes
}

// classify says what err is evidence of and which codes describe it, from
// the typed error of the package that failed.
func classify(err error) *failure {
	var f *failure
	var r *refusal
	var me *manifest.Error
	var fe *fetch.Error
	var de *device.Error
	switch {
	case errors.As(err, &f):
		return f
	case errors.As(err, &r):
		return &failure{class: classRefused, fatal: true, codes: decisionCodes(r.decision), err: err}
	case errors.As(err, &me):
		return &failure{class: classManifest, fatal: true, codes: []string{string(me.Code)}, err: err}
	case errors.As(err, &fe):
		code := string(fetch.CodeOf(err))
		transient := fetch.IsTransient(err)
		c := classServer
		switch {
		case fetch.IsImageEvidence(err):
			c = classImage
		case fe.Code == fetch.CodeNoSpace || fe.Code == fetch.CodeBadRequest:
			c = classLocal
		case fe.Code == fetch.CodeCanceled || transient:
			c = classUnavailable
		}
		return &failure{class: c, fatal: !transient && c != classLocal, codes: []string{code}, err: err}
	case errors.Is(err, device.ErrFlashInterrupted):
		// One rule for the running and the restarted agent: a flash is
		// finished only at 100% or with the new version reported.
		return &failure{class: classInterrupted, codes: []string{CodeInstallInterrupted}, err: err}
	case errors.As(err, &de):
		code := de.Code
		if code == "" {
			code = CodeDevice
		}
		if de.Transient {
			return &failure{class: classUnavailable, codes: []string{code}, err: err}
		}
		return &failure{class: classDevice, fatal: true, codes: []string{code}, err: err}
	case errors.Is(err, device.ErrUnreachable):
		return &failure{class: classUnavailable, codes: []string{device.CodeUnreachable}, err: err}
	}
	return &failure{class: classLocal, codes: []string{CodeInternal}, err: err}
}

// describeTables renders the classes, the actions and every step's failure
// table as Markdown (for docs/design.md and the closing note).
func describeTables() string {
	var sb strings.Builder
	sb.WriteString("| class | what the failure is evidence of |\n|---|---|\n")
	for _, c := range classes() {
		fmt.Fprintf(&sb, "| %s | %s |\n", c, classDocs[c])
	}
	sb.WriteString("\n| action | what happens |\n|---|---|\n")
	for _, a := range []action{nextCycle, newAttempt, quarantine} {
		fmt.Fprintf(&sb, "| %s | %s |\n", actionNames[a], actionDocs[a])
	}
	sb.WriteString("\nOne row per step (its table in `agent/step_*.go`); `-` is a class the step does not meet.\n\n| step |")
	for _, c := range classes() {
		fmt.Fprintf(&sb, " %s |", c)
	}
	sb.WriteString(" retried within the cycle |\n|---|")
	for range classes() {
		sb.WriteString("---|")
	}
	sb.WriteString("---|\n")
	for _, s := range allStates() {
		if len(s.failures) == 0 {
			continue
		}
		fmt.Fprintf(&sb, "| %s |", s.name)
		for _, c := range classes() {
			cell := "-"
			if a, ok := s.failures[c]; ok {
				cell = actionNames[a]
			}
			fmt.Fprintf(&sb, " %s |", cell)
		}
		retries := s.retries
		if retries == "" {
			retries = "-"
		}
		fmt.Fprintf(&sb, " %s |\n", retries)
	}
	sb.WriteString("\n")
	return sb.String()
}
