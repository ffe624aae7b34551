package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/support"
	"github.com/fwagent/fwagent/internal/cli"
)

// siteSummary counts a site cycle's recorders by how they ended.
type siteSummary struct {
	Recorders int            `json:"recorders"`
	Results   map[string]int `json:"results"`
	Exit      int            `json:"exit_code"`
}

// siteExit maps a site cycle's outcomes to the documented exit codes
// (docs/site-gateway.md): 0 only when every selected recorder ended
// installed, up to date or (check) with an allowed update available; else
// the most serious of: 5 an install failed on a recorder, 1 any other
// failure or a release the site held back, 4 a refusal, 3 nothing to do
// or waiting for a window.
func siteExit(outs []agent.DeviceOutcome) int {
	code := exitOK
	rank := map[int]int{exitOK: 0, exitNothing: 1, exitRefused: 2, exitError: 3, exitInstallFailed: 4}
	for _, o := range outs {
		c := exitFor(o.Outcome)
		switch {
		case o.Result == agent.ResultNothing && slices.Contains(o.Codes, agent.CodeUpToDate):
			c = exitOK
		case o.Result == agent.ResultHeld:
			c = exitError
		}
		if rank[c] > rank[code] {
			code = c
		}
	}
	return code
}

// deviceLine is one recorder's line: name, model, firmware, and the
// decision or step it ended with.
func deviceLine(o agent.DeviceOutcome) string {
	model, firmware := "-", "-"
	if id := o.Identity; id != nil {
		model, firmware = id.Model, id.FirmwareVersion
	}
	what := string(o.Result)
	switch {
	case o.Release != "" && o.Step != "":
		what += " " + o.Release + " at " + o.Step
	case o.Release != "":
		what += " " + o.Release
	}
	if len(o.Codes) > 0 {
		what += " [" + strings.Join(o.Codes, ", ") + "]"
	}
	return fmt.Sprintf("%-16s %-22s %-10s %s", o.Device, model, firmware, what)
}

// printSite writes one line per recorder, each recorder's message, and the
// site summary.
func printSite(w io.Writer, outs []agent.DeviceOutcome, sum siteSummary) {
	fmt.Fprintf(w, "%-16s %-22s %-10s %s\n", "DEVICE", "MODEL", "FIRMWARE", "RESULT")
	for _, o := range outs {
		fmt.Fprintln(w, deviceLine(o))
	}
	fmt.Fprintln(w)
	for _, o := range outs {
		fmt.Fprintf(w, "%s: %s\n", o.Device, o.Message)
	}
	keys := make([]string, 0, len(sum.Results))
	for k := range sum.Results {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", sum.Results[k], k))
	}
	fmt.Fprintf(w, "\nsite: %d recorders: %s (exit %d)\n", sum.Recorders, strings.Join(parts, ", "), sum.Exit)
}

// finishSite prints a site cycle, readable or as a JSON array of the
// recorders' outcomes, and returns the site's exit code.
func finishSite(w io.Writer, outs []agent.DeviceOutcome, asJSON bool) error {
	sum := siteSummary{Recorders: len(outs), Results: map[string]int{}, Exit: siteExit(outs)}
	for _, o := range outs {
		sum.Results[string(o.Result)]++
	}
	if asJSON {
		if err := writeJSON(w, outs); err != nil {
			return err
		}
	} else {
		printSite(w, outs, sum)
	}
	if sum.Exit != exitOK {
		return cli.WithCode(sum.Exit, nil)
	}
	return nil
}

// siteMode reports whether a command shows the site form: a devices: list,
// or --device given.
func (s *Main) siteMode(devices []string) bool {
	return s.cfg.IsSite() || len(devices) > 0
}

// selected returns the agents --device names (all when none).
func (s *Main) selected(devices []string) ([]*agent.Agent, error) {
	a, err := s.site.Select(devices...)
	if err != nil {
		return nil, cli.Usage(fmt.Errorf("--device: %w", err))
	}
	return a, nil
}

// deviceStatus is one recorder's status on the status endpoint of a site.
type deviceStatus struct {
	Device string `json:"device"`
	agent.Status
}

// siteStatus is what the status endpoint shows: the agent's status for a
// device: config (as before), one entry per recorder for a site.
func siteStatus(s *Main) any {
	if !s.cfg.IsSite() {
		return s.agent.Status()
	}
	out := make([]deviceStatus, 0, len(s.site.Agents))
	for _, a := range s.site.Agents {
		out = append(out, deviceStatus{Device: a.DeviceName(), Status: a.Status()})
	}
	return out
}

// siteMetrics is what /metrics serves: the agent's metrics for a device:
// config (as before), every recorder's with its device label for a site.
func siteMetrics(s *Main) io.WriterTo {
	if !s.cfg.IsSite() {
		return s.agent.Metrics
	}
	ms := make(support.SiteMetrics, 0, len(s.site.Agents))
	for _, a := range s.site.Agents {
		ms = append(ms, a.Metrics)
	}
	return ms
}

// gatewayLog is the logger of the command's own lines: on a site they
// carry device "(site)", as every line names its recorder or the gateway.
func (s *Main) gatewayLog() logrus.FieldLogger {
	if s.cfg.IsSite() {
		return s.log.WithField("device", agent.SiteLogName)
	}
	return s.log
}
