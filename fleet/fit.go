package fleet

import (
	"strings"
	"unicode/utf8"
)

// The marks Fit leaves in a field it had to change.
const (
	// FitCut ends a value Fit cut at its limit.
	FitCut = "..."
	// FitPlaceholder stands for each character the protocol refuses (a
	// control character, an invalid byte, U+FFFD) outside a report's
	// message; in the message U+FFFD stands for it.
	FitPlaceholder = "?"
)

// Fit makes the check-in's text and list fields fit the protocol, so that
// a device whose recorder reports an over-long or garbled firmware string
// still checks in: every character the server refuses becomes
// FitPlaceholder, a field over its limit is cut on a character boundary
// and ends in FitCut, and groups keep their first MaxListItems non-empty
// items. The rules are Validate's (the same table of fields), so a
// check-in Fit left is valid but for its sequence number, time, numbers,
// result word and required fields, which Fit does not invent.
//
// The agent's config refuses a site or groups the protocol cannot carry
// when it is loaded (package agent/config), so what Fit changes comes
// from the recorder, or from a Config that skipped its Validate.
//
// Fit changes only c: an agent fits the copy it sends, and keeps deciding
// on its recorder's real identity. It returns the names of the fields it
// changed (none when c already fitted), for the agent's log.
func (c *CheckIn) Fit() []string {
	changed := fitStrings(c.textFields())
	if fitList(&c.Groups) {
		changed = append(changed, "groups")
	}
	return changed
}

// Fit makes the report's text and list fields fit the protocol, as
// CheckIn.Fit does; in the message, tabs and line breaks stay and U+FFFD
// stands for each other control character and each invalid byte. It
// returns the names of the fields it changed.
func (r *Report) Fit() []string {
	changed := fitStrings(append(reportTextFields(&r.Report), messageField(&r.Report)))
	if fitList(&r.Codes) {
		changed = append(changed, "codes")
	}
	return changed
}

// fitStrings fits each field to its rules and returns the names of those
// it changed.
func fitStrings(fs []field) []string {
	var changed []string
	for _, f := range fs {
		if v := fitText(*f.value, f.max, f.prose); v != *f.value {
			*f.value, changed = v, append(changed, f.name)
		}
	}
	return changed
}

// fitList fits a list field (CheckList's rules): empty items go, each
// other is fitted as a short word, at most MaxListItems stay. The list is
// copied before it changes (it may be the agent's config), and reported
// changed only when an item differs.
func fitList(items *[]string) bool {
	if CheckList("", *items) == nil {
		return false
	}
	out := make([]string, 0, min(len(*items), MaxListItems))
	for _, s := range *items {
		if s != "" && len(out) < MaxListItems {
			out = append(out, fitText(s, MaxListItemLen, false))
		}
	}
	*items = out
	return true
}

// fitText returns v with each rune checkText refuses replaced (by U+FFFD
// in prose, FitPlaceholder elsewhere) and cut to max bytes on a rune
// boundary, ending in FitCut; v itself when it already fits.
func fitText(v string, max int, prose bool) string {
	if len(v) <= max && checkText("", v, prose) == nil {
		return v
	}
	mark := FitPlaceholder
	if prose {
		mark = string(utf8.RuneError)
	}
	var b strings.Builder
	b.Grow(min(len(v), max+len(mark)))
	for i := 0; i < len(v) && b.Len() <= max; {
		c, size := utf8.DecodeRuneInString(v[i:])
		if c == utf8.RuneError && size == 1 || !textRune(c, prose) {
			b.WriteString(mark)
		} else {
			b.WriteString(v[i : i+size])
		}
		i += size
	}
	s := b.String()
	if len(s) <= max {
		return s
	}
	cut := max - len(FitCut)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + FitCut
}
