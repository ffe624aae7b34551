// Package redact owns the rules that keep secrets and personal data out of
// what the agent writes and what leaves the device: Redact for free text
// (logs, support bundles, reports), URL for rendering one URL without its
// user information, and Record for what goes into the permanent records
// (audit trail, journal, history).
//
// It must not decide what is written where: callers choose the rule. It has
// no dependencies outside the standard library so that every package (audit,
// journal, fetch, the device backends) can use it.
package redact

import (
	"bytes"
	"encoding/base64"
	"net"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Markers that replace redacted text. They never match a redaction rule
// themselves, so redacting twice changes nothing.
const (
	MarkerIP         = "[REDACTED:ip]"
	MarkerEmail      = "[REDACTED:email]"
	MarkerUser       = "[REDACTED:user]"
	MarkerSecret     = "[REDACTED:secret]"
	MarkerPrivateKey = "[REDACTED:private_key]"
	MarkerMAC        = "[REDACTED:mac]"
	MarkerDeviceID   = "[REDACTED:device_id]"
	MarkerName       = "[REDACTED:name]"
	markerPrefix     = "[REDACTED:"
)

// Redact returns s with every secret replaced by a marker: private key
// blocks, Authorization, Cookie and Set-Cookie header values, passwords in
// URLs (also with '/' or '@' in them), the values of password, passwd, pwd,
// pass, secret, secret_key, *_secret_access_key, token, api_key, passphrase,
// credential and session/sessionid keys in key=value, key: value (YAML),
// JSON and XML forms (XML also \u003c-escaped as older logs hold it), and of
// --password/--token style command-line options, and Basic and Bearer
// credentials standing alone in text (a Basic value that decodes to
// user:password, a Bearer token with a digit or of 20 characters or more).
// A URL password already replaced by "<redacted>" (the configuration's
// marker) still counts as one, so its user name goes too. Unless
// includePersonal is set, it also replaces personal data: IPv4 and IPv6
// addresses, MAC addresses (aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff,
// aabb.ccdd.eeff, and the values of mac/macAddress keys), device IDs
// (deviceID/device_id keys, as the recorder's deviceInfo reports them), the
// name the owner gave the recorder (deviceName keys: often a place or a
// person),
// email addresses (also %40-encoded), and user names (URL userinfo,
// user/username/login keys, the username of a Digest Authorization header).
// Version strings, model IDs, serials and hex digests are left alone.
// Redact is idempotent.
func Redact(s string, includePersonal bool) string {
	r := redaction{personal: includePersonal}
	if strings.Contains(s, "PRIVATE KEY") {
		s = r.privateKeys(s)
	}
	// The other rules work line by line, each behind a cheap test: regular
	// expressions over short lines are much faster than over a whole file.
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			b.WriteString(r.line(s))
			break
		}
		b.WriteString(r.line(s[:i]))
		b.WriteByte('\n')
		s = s[i+1:]
	}
	return b.String()
}

// secretWords are the lowercase substrings that can start a secret key.
var secretWords = []string{"pass", "pwd", "secret", "token", "api", "credential", "session", "cookie"}

// personalKeys are the key rules for personal values other than user names:
// the key, its XML element forms and the marker.
var personalKeys = []struct {
	word           string // lowercase substring that must be on the line
	key, xml, xesc *regexp.Regexp
	marker         string
}{
	{"mac", macKeyRE, regexp.MustCompile(`(?i)(<` + xmlMACName + `>)([^<]*)(</)`), regexp.MustCompile(`(?i)(\\u003c` + xmlMACName + `\\u003e)(` + xmlEscText + `)(\\u003c/)`), MarkerMAC},
	{"device", deviceIDKeyRE, regexp.MustCompile(`(?i)(<` + xmlDeviceIDName + `>)([^<]*)(</)`), regexp.MustCompile(`(?i)(\\u003c` + xmlDeviceIDName + `\\u003e)(` + xmlEscText + `)(\\u003c/)`), MarkerDeviceID},
	{"device", deviceNameKeyRE, regexp.MustCompile(`(?i)(<` + xmlDeviceNameName + `>)([^<]*)(</)`), regexp.MustCompile(`(?i)(\\u003c` + xmlDeviceNameName + `\\u003e)(` + xmlEscText + `)(\\u003c/)`), MarkerName},
}

// line applies every rule but the private key one to a line.
func (r redaction) line(s string) string {
	lower := strings.ToLower(s)
	if strings.Contains(lower, "authorization") {
		s = r.authorization(s)
	}
	hasAt := strings.IndexByte(s, '@') >= 0
	if strings.Contains(lower, "cookie") {
		s = r.cookies(s)
	}
	if hasAt && strings.Contains(s, "://") {
		s = r.urlUserinfo(s)
	}
	hasTag := strings.IndexByte(s, '<') >= 0
	// JSON encoders that escape HTML (old log files) store < and > as \u003c and \u003e.
	hasEscTag := strings.Contains(lower, `\u003c`)
	for _, w := range secretWords {
		if strings.Contains(lower, w) {
			s = r.keyValues(s, secretKeyRE, MarkerSecret, false)
			s = r.keyValues(s, secretWordKeyRE, MarkerSecret, true)
			if strings.Contains(s, "--") {
				s = r.keyValues(s, cliSecretRE, MarkerSecret, false)
			}
			if hasTag {
				s = r.xml(s, xmlSecretRE, MarkerSecret)
			}
			if hasEscTag {
				s = r.xml(s, xmlEscSecretRE, MarkerSecret)
			}
			break
		}
	}
	if strings.Contains(lower, "basic") || strings.Contains(lower, "bearer") {
		s = looseCredentials(s)
	}
	if r.personal {
		return s
	}
	for _, k := range personalKeys {
		if strings.Contains(lower, k.word) {
			s = r.keyValues(s, k.key, k.marker, true)
			if hasTag {
				s = r.xml(s, k.xml, k.marker)
			}
			if hasEscTag {
				s = r.xml(s, k.xesc, k.marker)
			}
		}
	}
	if strings.Count(s, ":") >= 5 || strings.Count(s, "-") >= 5 || strings.Count(s, ".") >= 2 {
		s = redactMACs(s)
	}
	if strings.Contains(lower, "user") || strings.Contains(lower, "login") {
		s = r.keyValues(s, userKeyRE, MarkerUser, true)
		if hasTag {
			s = r.xml(s, xmlUserRE, MarkerUser)
		}
		if hasEscTag {
			s = r.xml(s, xmlEscUserRE, MarkerUser)
		}
	}
	if hasAt || strings.Contains(s, "%40") {
		s = emailRE.ReplaceAllString(s, MarkerEmail)
	}
	if strings.Count(s, ":") >= 2 {
		s = redactIPv6(s)
	}
	if strings.Count(s, ".") >= 3 {
		s = redactIPv4(s)
	}
	return s
}

// RedactBytes is Redact for byte slices.
func RedactBytes(b []byte, includePersonal bool) []byte {
	return []byte(Redact(string(b), includePersonal))
}

type redaction struct{ personal bool }

var (
	privateKeyRE  = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----`)
	privateKeyEnd = regexp.MustCompile(`-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----`)
	base64LineRE  = regexp.MustCompile(`^[ \t]*[A-Za-z0-9+/=]{16,}[ \t]*\r?$`)
	authHeaderRE  = regexp.MustCompile(`(?i)\b(?:proxy-)?authorization(?:\\?["'])?[ \t]*[:=][ \t]*\[?(?:\\?["'])?[ \t]*`)
	// urlUserinfoRE: user@, or user:password@ where the password may hold
	// '/', '@' and the like: it runs to the last '@' before a space or quote.
	// A user name starting a marker takes the first form (idempotence).
	// The configuration's own marker "<redacted>" is a password too, or a
	// part of one: the password still runs to the last '@', as it will on a
	// second pass when the marker has become [REDACTED:secret].
	urlUserinfoRE = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://([^/\s@"'<>\\:\[\]]*:(?:<redacted>|[^\s"'<>\\])*|[^/\s@"'<>\\]+)@`)
	secretKeyRE   = regexp.MustCompile(`(?i)(?:password|passwd|pwd|secret(?:[_-]?access)?[_-]?key|secret|token|api[_-]?key|passphrase|session(?:[_-]?id)?)(\\?["']?)[ \t]*[:=][ \t]*`)
	// secretWordKeyRE: keys too short to match inside other words (bypass).
	// "credentials" is one of them: the reason code badCredentials is no key.
	secretWordKeyRE = regexp.MustCompile(`(?i)(?:pass|credentials?)(\\?["']?)[ \t]*[:=][ \t]*`)
	// cliSecretRE: command-line options with their value after a space.
	cliSecretRE     = regexp.MustCompile(`(?i)--(?:password|passwd|pass|passphrase|token|secret|api[_-]?key|credentials?)[ \t]+`)
	cookieRE        = regexp.MustCompile(`(?i)\b(?:set-)?cookie(?:\\?["'])?[ \t]*[:=][ \t]*\[?(?:\\?["'])?`)
	userKeyRE       = regexp.MustCompile(`(?i)(?:user|username|user_name|login)(\\?["']?)[ \t]*[:=][ \t]*`)
	macKeyRE        = regexp.MustCompile(`(?i)(?:mac|mac[_-]?address|mac[_-]?addr)(\\?["']?)[ \t]*[:=][ \t]*`)
	deviceNameKeyRE = regexp.MustCompile(`(?i)(?:device[_-]?name)(\\?["']?)[ \t]*[:=][ \t]*`)
	deviceIDKeyRE   = regexp.MustCompile(`(?i)(?:device[_-]?id)(\\?["']?)[ \t]*[:=][ \t]*`)
	// macRE: six two-digit groups joined by ':' or '-', or three
	// four-digit groups joined by '.'; redactMACs checks what surrounds it.
	macRE = regexp.MustCompile(`(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}|(?:[0-9A-Fa-f]{2}-){5}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}`)
	// looseCredRE: a Basic or Bearer scheme word and the token after it.
	looseCredRE    = regexp.MustCompile(`(?i)\b(basic|bearer)[ \t]+([A-Za-z0-9._~+/=-]+)`)
	xmlSecretRE    = regexp.MustCompile(`(?i)(<` + xmlSecretName + `>)([^<]*)(</)`)
	xmlUserRE      = regexp.MustCompile(`(?i)(<` + xmlUserName + `>)([^<]*)(</)`)
	xmlEscSecretRE = regexp.MustCompile(`(?i)(\\u003c` + xmlSecretName + `\\u003e)(` + xmlEscText + `)(\\u003c/)`)
	xmlEscUserRE   = regexp.MustCompile(`(?i)(\\u003c` + xmlUserName + `\\u003e)(` + xmlEscText + `)(\\u003c/)`)
	emailRE        = regexp.MustCompile(`[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	ipv4RE         = regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}\b`)
	ipv6CandRE     = regexp.MustCompile(`[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*`)
	authSchemes    = map[string]bool{"basic": true, "bearer": true, "digest": true, "negotiate": true, "ntlm": true, "token": true, "hoba": true, "mutual": true, "aws4-hmac-sha256": true, "apikey": true, "targettoken": true, "gatewaytoken": true}
	digestParamsRE = regexp.MustCompile(`^[ \t]*,?[ \t]*([A-Za-z0-9_-]+)=(\\"[^"\\]*\\"|"[^"]*"|\[REDACTED:[a-z_]+\]|[^\s,"\\\]]+)`)
)

// privateKeys replaces PEM private key blocks; a block without its END line
// is redacted up to the end of its line and the base64 lines after it.
func (redaction) privateKeys(s string) string {
	var b strings.Builder
	for {
		loc := privateKeyRE.FindStringIndex(s)
		if loc == nil {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:loc[0]])
		b.WriteString(MarkerPrivateKey)
		rest := s[loc[1]:]
		if end := privateKeyEnd.FindStringIndex(rest); end != nil {
			s = rest[end[1]:]
			continue
		}
		// Unterminated: drop the rest of the line and following base64 lines.
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			return b.String()
		}
		rest = rest[i:]
		for {
			if len(rest) < 2 || rest[0] != '\n' {
				break
			}
			j := strings.IndexByte(rest[1:], '\n')
			line := rest[1:]
			if j >= 0 {
				line = rest[1 : 1+j]
			}
			if !base64LineRE.MatchString(line) {
				break
			}
			rest = rest[1+len(line):]
		}
		s = rest
	}
}

// alreadyMarked reports whether the value after a matched header (head,
// the text up to and including the match) was redacted before: the rest
// starts with a marker, or the match ended inside one's opening bracket.
// It keeps redaction idempotent.
func alreadyMarked(head, rest string) bool {
	return strings.HasPrefix(rest, markerPrefix) || strings.HasSuffix(head, "[") && strings.HasPrefix(rest, markerPrefix[1:])
}

// afterEach copies s, and after each match of re whose value was not
// redacted before, lets value write the replacement of what starts the rest
// to b and return the text after it.
func afterEach(s string, re *regexp.Regexp, value func(b *strings.Builder, rest string) string) string {
	var b strings.Builder
	for {
		loc := re.FindStringIndex(s)
		if loc == nil {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:loc[1]])
		head := s[:loc[1]]
		s = s[loc[1]:]
		if !alreadyMarked(head, s) {
			s = value(&b, s)
		}
	}
}

// authorization replaces Authorization header credentials. The scheme is
// kept; a Digest header keeps its username (as a user name) only.
func (r redaction) authorization(s string) string {
	return afterEach(s, authHeaderRE, func(b *strings.Builder, s string) string {
		word := tokenPrefix(s)
		if word == "" {
			return s
		}
		after := s[len(word):]
		scheme := strings.ToLower(word)
		if !authSchemes[scheme] || !(strings.HasPrefix(after, " ") || strings.HasPrefix(after, "\t")) {
			// No scheme: the word is the credential.
			b.WriteString(MarkerSecret)
			return after
		}
		b.WriteString(word)
		s = after
		if scheme == "digest" {
			return r.digest(b, s)
		}
		trimmed := strings.TrimLeft(s, " \t")
		b.WriteString(s[:len(s)-len(trimmed)])
		s = trimmed
		if strings.HasPrefix(s, markerPrefix) {
			return s
		}
		if cred := tokenPrefix(s); cred != "" {
			b.WriteString(MarkerSecret)
			s = s[len(cred):]
		}
		return s
	})
}

// digest writes the redacted parameters of a Digest header and returns the
// text after them.
func (r redaction) digest(b *strings.Builder, s string) string {
	user, others := "", false
	rest := s
	for {
		m := digestParamsRE.FindStringSubmatchIndex(rest)
		if m == nil {
			break
		}
		name := strings.ToLower(rest[m[2]:m[3]])
		if name == "username" {
			user = rest[m[4]:m[5]]
		} else {
			others = true
		}
		rest = rest[m[1]:]
	}
	if user == "" && !others {
		return s
	}
	b.WriteByte(' ')
	if user != "" {
		b.WriteString("username=")
		b.WriteString(r.quotedUser(user))
		if others {
			b.WriteString(",")
		}
	}
	if others {
		if user != "" {
			b.WriteByte(' ')
		}
		b.WriteString(MarkerSecret)
	}
	return rest
}

// quotedUser redacts a possibly quoted user name, keeping its quotes.
func (r redaction) quotedUser(v string) string {
	if r.personal {
		return v
	}
	for _, q := range []string{`\"`, `"`} {
		if len(v) >= 2*len(q) && strings.HasPrefix(v, q) && strings.HasSuffix(v, q) {
			return q + MarkerUser + q
		}
	}
	return MarkerUser
}

// tokenPrefix returns the leading run of s up to a space, quote, backslash,
// comma, semicolon or closing bracket.
func tokenPrefix(s string) string {
	i := strings.IndexAny(s, " \t\r\n\"'\\,;]})>&")
	if i < 0 {
		return s
	}
	return s[:i]
}

// cookies replaces the value of Cookie and Set-Cookie headers (session
// cookies such as the recorder's WebSession) up to the end of the line, a
// quote, a backslash or a closing bracket.
func (redaction) cookies(s string) string {
	return afterEach(s, cookieRE, func(b *strings.Builder, s string) string {
		end := strings.IndexAny(s, "\"'\\\r\n]")
		if end < 0 {
			end = len(s)
		}
		for end > 0 && (s[end-1] == ' ' || s[end-1] == '\t') {
			end--
		}
		if end > 0 {
			b.WriteString(MarkerSecret)
			s = s[end:]
		}
		return s
	})
}

// urlUserinfo replaces user:password@ in URLs: the password always, the user
// name unless personal data is included.
func (r redaction) urlUserinfo(s string) string {
	return replaceSubmatch(urlUserinfoRE, s, func(m []string) string {
		full, ui := m[0], m[1]
		prefix := full[:len(full)-len(ui)-1]
		user, pass, hasPass := splitUserinfo(ui)
		if !r.personal && !strings.HasPrefix(user, markerPrefix) {
			user = MarkerUser
		}
		out := prefix + user
		if hasPass {
			if !isMarker(pass) {
				pass = MarkerSecret
			}
			out += ":" + pass
		}
		return out + "@"
	})
}

// splitUserinfo splits user:pass, treating a leading marker as one word.
func splitUserinfo(ui string) (user, pass string, ok bool) {
	if strings.HasPrefix(ui, markerPrefix) {
		if end := strings.IndexByte(ui, ']'); end > 0 {
			user, rest := ui[:end+1], ui[end+1:]
			if strings.HasPrefix(rest, ":") {
				return user, rest[1:], true
			}
			if rest == "" {
				return user, "", false
			}
		}
	}
	user, pass, ok = strings.Cut(ui, ":")
	return user, pass, ok
}

// keyValues replaces the value after each key matched by re (key=value,
// key: value, "key":"value", \"key\":\"value\"). A value that starts a line
// in YAML form (key: value) runs to the end of the line.
//
// The key may have any prefix of letters, digits, '_', '.', '-'
// (device_password); with wordStart the key word itself must start a word or
// follow '_', '.', '-' (isapi_user, but not superuser).
func (r redaction) keyValues(s string, re *regexp.Regexp, marker string, wordStart bool) string {
	var b strings.Builder
	pos := 0 // s[:pos] is written to b
	for pos <= len(s) {
		loc := re.FindStringIndex(s[pos:])
		if loc == nil {
			break
		}
		start, end := pos+loc[0], pos+loc[1]
		if wordStart && start > 0 && isWordByte(s[start-1]) && s[start-1] != '_' {
			b.WriteString(s[pos:end])
			pos = end
			continue
		}
		keyStart := start
		for keyStart > 0 && (isWordByte(s[keyStart-1]) || s[keyStart-1] == '.' || s[keyStart-1] == '-') {
			keyStart--
		}
		lineStart := strings.LastIndexByte(s[:keyStart], '\n') + 1
		yamlLine := strings.TrimLeft(s[lineStart:keyStart], " \t-\"'") == "" && strings.Contains(s[start:end], ":")
		b.WriteString(s[pos:end])
		pos = end
		n, val, quote := valueExtent(s[pos:], yamlLine)
		if n == 0 || strings.HasPrefix(val, markerPrefix) {
			continue
		}
		b.WriteString(quote)
		b.WriteString(marker)
		b.WriteString(quote)
		pos += n
	}
	b.WriteString(s[pos:])
	return b.String()
}

// valueExtent finds the value at the start of s: its length in s, the value
// without quotes, and the quote that encloses it.
func valueExtent(s string, toEOL bool) (n int, val, quote string) {
	switch {
	case strings.HasPrefix(s, `\"`):
		if i := strings.Index(s[2:], `\"`); i >= 0 {
			return i + 4, s[2 : 2+i], `\"`
		}
		return 0, "", ""
	case strings.HasPrefix(s, `"`):
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				return i + 1, s[1:i], `"`
			case '\n':
				return 0, "", ""
			}
		}
		return 0, "", ""
	case strings.HasPrefix(s, `'`):
		if i := strings.IndexAny(s[1:], "'\n"); i >= 0 && s[1+i] == '\'' {
			return i + 2, s[1 : 1+i], `'`
		}
		return 0, "", ""
	}
	var end int
	if toEOL {
		end = strings.IndexAny(s, "\r\n")
		if end < 0 {
			end = len(s)
		}
		// Keep a trailing YAML comment.
		if c := strings.Index(s[:end], " #"); c >= 0 {
			end = c
		}
		for end > 0 && (s[end-1] == ' ' || s[end-1] == '\t') {
			end--
		}
	} else {
		end = len(tokenPrefix(s))
	}
	if end == 0 {
		return 0, "", ""
	}
	return end, s[:end], ""
}

// Element names whose text is a secret or a user name.
const (
	xmlSecretName   = `[A-Za-z0-9_.-]*(?:password|passwd|pwd|pass|secret|token|api[_-]?key|passphrase|session(?:id)?)`
	xmlUserName     = `(?:[A-Za-z0-9_.-]*[_.-])?(?:user|username|user_name|login)`
	xmlMACName      = `(?:mac|macAddress|mac_address)`
	xmlDeviceIDName = `(?:deviceID|device_id)`
	// deviceName is the name the owner gave the recorder (often a place).
	xmlDeviceNameName = `(?:deviceName|device_name)`
	// xmlEscText is element text in escaped form: anything up to a \u003c.
	xmlEscText = `(?:[^<\\]|\\[^u]|\\u(?:[^0]|0[^0]|00[^3]|003[^cC]))*`
)

// xml replaces the text of <key>value</key> elements (re's groups: opening
// tag, text, start of the closing tag), also in their \u003c...\u003e escaped form.
func (r redaction) xml(s string, re *regexp.Regexp, marker string) string {
	return replaceSubmatch(re, s, func(m []string) string {
		if m[2] == "" || strings.HasPrefix(m[2], markerPrefix) {
			return m[0]
		}
		return m[1] + marker + m[3]
	})
}

// redactMACs replaces MAC addresses that stand alone: not inside a word and
// not part of a longer run of the same notation.
func redactMACs(s string) string {
	var b strings.Builder
	last := 0
	for _, loc := range macRE.FindAllStringIndex(s, -1) {
		start, end := loc[0], loc[1]
		sep := s[start+2]
		if sep != ':' && sep != '-' {
			sep = '.'
		}
		if start > 0 && (isWordByte(s[start-1]) || s[start-1] == sep) {
			continue
		}
		if end < len(s) && (isWordByte(s[end]) || s[end] == sep && end+1 < len(s) && isHex(s[end+1])) {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(MarkerMAC)
		last = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// looseCredentials replaces Basic and Bearer credentials that stand in text
// without an Authorization header (release notes, error messages): a Basic
// value that decodes to user:password, a Bearer token that holds a digit or
// is 20 characters or longer. Plain words after "basic" stay.
func looseCredentials(s string) string {
	return replaceSubmatch(looseCredRE, s, func(m []string) string {
		scheme, tok := m[1], m[2]
		secret := false
		switch strings.ToLower(scheme) {
		case "basic":
			secret = isBasicCredential(tok)
		case "bearer":
			secret = len(tok) >= 20 || len(tok) >= 8 && strings.ContainsAny(tok, "0123456789")
		}
		if !secret {
			return m[0]
		}
		return m[0][:len(m[0])-len(tok)] + MarkerSecret
	})
}

// isBasicCredential reports whether tok is base64 of user:password.
func isBasicCredential(tok string) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(tok); err == nil && len(b) >= 3 && bytes.IndexByte(b, ':') > 0 && utf8.Valid(b) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// redactIPv6 replaces runs of hex digits, colons and dots that parse as an
// IPv6 address and stand alone (not inside a word).
func redactIPv6(s string) string {
	var b strings.Builder
	last := 0
	for _, loc := range ipv6CandRE.FindAllStringIndex(s, -1) {
		start, end := loc[0], loc[1]
		if start > 0 && isWordByte(s[start-1]) || end < len(s) && isWordByte(s[end]) {
			continue
		}
		cand := s[start:end]
		// Trailing punctuation (end of sentence, port separator) is not part of it.
		trimmed := strings.TrimRight(cand, ".:")
		if strings.HasPrefix(trimmed, ":") && !strings.HasPrefix(trimmed, "::") {
			trimmed = trimmed[1:]
			start++
		}
		ip := net.ParseIP(trimmed)
		if ip == nil || strings.Count(trimmed, ":") < 2 {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(MarkerIP)
		last = start + len(trimmed)
	}
	b.WriteString(s[last:])
	return b.String()
}

// redactIPv4 replaces dotted quads with octets up to 255 that are not part of
// a longer dotted number (a four-part version like 5.5.0.1.2 stays).
func redactIPv4(s string) string {
	var b strings.Builder
	last := 0
	for _, loc := range ipv4RE.FindAllStringIndex(s, -1) {
		start, end := loc[0], loc[1]
		if start > 0 && (s[start-1] == '.' || isWordByte(s[start-1])) {
			continue
		}
		if end < len(s) && (isWordByte(s[end]) || s[end] == '.' && end+1 < len(s) && isDigit(s[end+1])) {
			continue
		}
		if !octetsValid(s[start:end]) {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(MarkerIP)
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// octetsValid reports whether every part of a dotted quad is at most 255
// (leading zeros allowed, as some devices print them).
func octetsValid(q string) bool {
	for _, p := range strings.Split(q, ".") {
		n := 0
		for i := 0; i < len(p); i++ {
			n = n*10 + int(p[i]-'0')
		}
		if n > 255 {
			return false
		}
	}
	return true
}

// isMarker reports whether s is exactly one redaction marker.
func isMarker(s string) bool {
	return strings.HasPrefix(s, markerPrefix) && strings.IndexByte(s, ']') == len(s)-1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWordByte(c byte) bool {
	return c == '_' || isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// replaceSubmatch is ReplaceAllStringFunc with access to the submatches.
func replaceSubmatch(re *regexp.Regexp, s string, f func(m []string) string) string {
	var b strings.Builder
	last := 0
	for _, loc := range re.FindAllStringSubmatchIndex(s, -1) {
		m := make([]string, len(loc)/2)
		for i := range m {
			if loc[2*i] >= 0 {
				m[i] = s[loc[2*i]:loc[2*i+1]]
			}
		}
		b.WriteString(s[last:loc[0]])
		b.WriteString(f(m))
		last = loc[1]
	}
	b.WriteString(s[last:])
	return b.String()
}
