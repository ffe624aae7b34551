package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// URL renders raw without its user information (user name and password),
// for every place a URL is logged, audited, journaled or reported. A URL
// that does not parse loses everything between "//" and the last '@' of its
// authority the same way; text that is not a URL comes back unchanged.
func URL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	if u, err := url.Parse(raw); err == nil && u.User != nil && u.Opaque == "" {
		u.User = nil
		return u.String()
	}
	return StripUserinfo(raw)
}

// userinfoRE finds the user information of URLs in free text: scheme://,
// then user@, or user:password@ where the password may hold '/' and '@' (it
// runs to the last '@' before a space or a quote), as urlUserinfoRE.
var userinfoRE = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)(?:[^/\s@"'<>\\:\[\]]*:(?:<redacted>|[^\s"'<>\\]*)|[^/?#\s"'<>\\]+)@`)

// StripUserinfo removes the user information (user name and password) of
// every URL in s, also inside longer text such as an error message that
// quotes a URL.
func StripUserinfo(s string) string {
	if !strings.Contains(s, "@") || !strings.Contains(s, "://") {
		return s
	}
	// Removing one userinfo can expose another ("a://u@:p@h"): repeat
	// until nothing changes; each pass shortens s.
	for {
		out := userinfoRE.ReplaceAllString(s, "$1")
		if out == s {
			return out
		}
		s = out
	}
}

// Secrets removes credentials from s and keeps personal data: it is Redact
// with includePersonal set, the rule of the local log.
func Secrets(s string) string { return Redact(s, true) }

// Record is the rule of the permanent records on the device (the audit
// trail, whose hash chain means an entry can never be scrubbed later, the
// journal and the history): no credential and no URL user information.
func Record(s string) string { return Secrets(StripUserinfo(s)) }
