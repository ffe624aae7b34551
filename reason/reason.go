// Package reason is the registry of every reason code fwagent gives to a
// refusal, a failure or a cycle that found nothing to do: verify's policy
// codes, manifest's refusals, fetch's and the device backends' failures,
// and the agent's own. Each code has one meaning and one piece of advice;
// the commands' output, the reports and the docs' table
// (docs/reference/codes.md) come from here, and code is compared with the
// constants declared here, never with a string typed elsewhere.
//
// It is a leaf: it imports nothing of fwagent, and every package may
// import it. Code values are stable: they are stored in journals and sent
// in reports, so a code is never renamed, only added.
package reason

//go:generate go run ./gen -o ../docs/reference/codes.md

import (
	"fmt"
	"sort"
	"strings"
)

// Code is a stable, machine-readable reason.
type Code string

// Source names the part of fwagent that gives a code.
type Source string

// Sources, in documentation order.
const (
	Verify   Source = "verify"   // the safety policy (before download, after download, after install)
	Manifest Source = "manifest" // the signed manifest's verification
	Fetch    Source = "fetch"    // the manifest fetch and the image download
	Device   Source = "device"   // the device backends (ISAPI, local)
	Agent    Source = "agent"    // the update cycle itself
)

// Info is what the registry knows about a code.
type Info struct {
	Code    Code
	Sources []Source // who gives it (some codes are shared: size_mismatch)
	Meaning string   // what happened, one sentence
	Advice  string   // what to do, one sentence
	// Refusal marks a code that refuses a release by policy (verify) or a
	// manifest by its verification: never retried until something changes.
	Refusal bool
}

var byCode = func() map[Code]Info {
	m := make(map[Code]Info, len(registry))
	for _, in := range registry {
		if _, dup := m[in.Code]; dup {
			panic(fmt.Sprintf("reason: code %q registered twice", in.Code))
		}
		m[in.Code] = in
	}
	return m
}()

// Lookup returns what the registry knows about c.
func Lookup(c Code) (Info, bool) {
	in, ok := byCode[c]
	return in, ok
}

// Advice returns c's advice, or "" for a code the registry does not know
// (a device may answer with a subStatusCode fwagent has never seen).
func Advice(c Code) string { return byCode[c].Advice }

// Meaning returns c's meaning, or "".
func Meaning(c Code) string { return byCode[c].Meaning }

// All returns every registered code, ordered by source, then code.
func All() []Info {
	out := append([]Info(nil), registry...)
	order := map[Source]int{Verify: 0, Manifest: 1, Fetch: 2, Device: 3, Agent: 4}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := order[out[i].Sources[0]], order[out[j].Sources[0]]
		if a != b {
			return a < b
		}
		return out[i].Code < out[j].Code
	})
	return out
}

// Markdown renders the registry as the docs' reference table.
func Markdown() string {
	var sb strings.Builder
	sb.WriteString("# Reason codes\n\n")
	sb.WriteString("<!-- Generated from reason/codes.go by `go generate ./reason`; do not edit. -->\n\n")
	sb.WriteString("Every refusal, failure and \"nothing to do\" carries one or more stable codes: in `fwagent check` and\n")
	sb.WriteString("`fwagent update` output, in the journal (`fwagent status`), in the audit trail and in reports. Codes are\n")
	sb.WriteString("never renamed. A device may also answer with a code of its own (an ISAPI `subStatusCode`); fwagent passes\n")
	sb.WriteString("it through unchanged.\n\n")
	sb.WriteString("| code | from | meaning | what to do |\n|---|---|---|---|\n")
	for _, in := range All() {
		src := make([]string, len(in.Sources))
		for i, s := range in.Sources {
			src[i] = string(s)
		}
		kind := ""
		if in.Refusal {
			kind = " (refusal)"
		}
		fmt.Fprintf(&sb, "| `%s` | %s%s | %s | %s |\n", in.Code, strings.Join(src, ", "), kind, escape(in.Meaning), escape(in.Advice))
	}
	return sb.String()
}

func escape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
