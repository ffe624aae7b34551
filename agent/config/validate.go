package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/fleet"
)

// Path returns the file the configuration was loaded from (or the name given
// to Parse).
func (c *Config) Path() string { return c.file }

// Validate checks a configuration built or changed in code; Parse and Load
// call it already. Errors name the key and, when known, the line.
func (c *Config) Validate() error {
	p := &problems{file: c.file, lines: c.lines}
	c.normalize()
	c.validate(p)
	return p.err()
}

// normalize trims and lowercases values whose case carries no meaning.
func (c *Config) normalize() {
	c.Device.Backend = strings.ToLower(strings.TrimSpace(c.Device.Backend))
	c.Device.ISAPI.URL = strings.TrimSpace(c.Device.ISAPI.URL)
	cert := strings.ToLower(strings.TrimSpace(c.Device.ISAPI.CertSHA256))
	cert = strings.TrimPrefix(strings.TrimPrefix(cert, "sha256 fingerprint="), "sha256:")
	c.Device.ISAPI.CertSHA256 = strings.ReplaceAll(cert, ":", "")
	c.Log.Level = strings.ToLower(strings.TrimSpace(c.Log.Level))
	c.Fleet.Site = strings.TrimSpace(c.Fleet.Site)
	for model, digests := range c.Policy.Pins {
		for i, d := range digests {
			digests[i] = strings.ToLower(strings.TrimSpace(d))
		}
		c.Policy.Pins[model] = digests
	}
	for i, g := range c.Groups {
		c.Groups[i] = strings.TrimSpace(g)
	}
	c.normalizeDevices()
}

func (c *Config) validate(p *problems) {
	// The bounds of each key, from its definition. A backend's keys are
	// checked only when that backend is selected.
	for _, k := range Keys {
		if k.check == nil || (strings.HasPrefix(k.Path, "device.") && c.IsSite()) || (strings.HasPrefix(k.Path, "device.isapi.") && c.Device.Backend != BackendISAPI) ||
			(strings.HasPrefix(k.Path, "device.local.") && c.Device.Backend != BackendLocal) {
			continue
		}
		if msg := k.check(c); msg != "" {
			p.at(k.Path, msg)
		}
	}
	if c.IsSite() {
		c.validateDevices(p)
	} else {
		c.validateDevice(p)
	}

	m := c.Manifest
	for i, u := range m.URLs {
		key := fmt.Sprintf("manifest.urls[%d]", i)
		if err := checkURL(u, "http", "https", "file"); err != nil {
			p.at(key, err.Error())
		}
	}
	if len(m.URLs) > 0 && len(m.Keys) == 0 {
		p.at("manifest.keys", "missing: manifest.urls is set, so list the PEM files of the public keys that sign the manifest")
	}
	// Paths are compared cleaned (a.pub and ./a.pub are one file); Load
	// compares them again once resolved against the config's directory.
	seenKey := map[string]bool{}
	for i, k := range m.Keys {
		key := fmt.Sprintf("manifest.keys[%d]", i)
		clean := filepath.Clean(k)
		switch {
		case strings.TrimSpace(k) == "":
			p.at(key, "empty path: give the PEM file of a public key")
			continue
		case seenKey[clean]:
			p.at(key, fmt.Sprintf("%s is listed twice: a threshold counts distinct keys", k))
		}
		seenKey[clean] = true
	}
	if m.Threshold >= 1 && len(m.Keys) > 0 && m.Threshold > len(seenKey) {
		p.at("manifest.threshold", fmt.Sprintf("%d signatures required but only %d keys listed in manifest.keys (distinct files): lower the threshold or add keys", m.Threshold, len(seenKey)))
	}
	if c.Retry.WaitMax < c.Retry.WaitMin {
		p.at("retry.wait_max", fmt.Sprintf("%s is shorter than retry.wait_min (%s): raise it", c.Retry.WaitMax, c.Retry.WaitMin))
	}

	folded := map[string]string{}
	for model, digests := range c.Policy.Pins {
		key := "policy.pins." + model
		f := strings.ToLower(strings.TrimSpace(model))
		if other, dup := folded[f]; dup {
			p.at(key, fmt.Sprintf("same model as %q (models compare without case): merge the two lists", other))
		}
		folded[f] = model
		if len(digests) == 0 {
			p.at(key, "empty list: list the allowed SHA-256 digests or remove the model")
		}
		for i, d := range digests {
			if !isHex(d, 32) {
				p.at(fmt.Sprintf("%s[%d]", key, i), fmt.Sprintf("%q is not a SHA-256 digest (64 hex characters)", d))
			}
		}
	}

	c.validateGroups(p, c.Fleet.URL)

	r := c.Report
	if r.URL != "" {
		if err := checkURL(r.URL, "http", "https"); err != nil {
			p.at("report.url", err.Error())
		}
	}
	oneSource(p, "report.token", r.Token, r.TokenFile, r.TokenEnv)
	if u := c.Fleet.URL; u != "" {
		if err := checkURL(u, "http", "https"); err != nil {
			p.at("fleet.url", err.Error())
		}
		// A check-in announces the daemon's longest sleep too
		// (fleet.checkin_interval's own key checks the interval).
		if poll := c.Poll; poll.Interval > maxCheckInInterval || poll.Jitter > maxCheckInInterval-poll.Interval {
			p.at("poll.interval", fmt.Sprintf("%s plus poll.jitter (%s) is longer than %s, the longest interval a check-in can announce to the fleet server (fleet.url is set): shorten them",
				formatDuration(poll.Interval), formatDuration(poll.Jitter), formatDuration(maxCheckInInterval)))
		}
	}

	if _, err := logrus.ParseLevel(c.Log.Level); err != nil {
		p.at("log.level", fmt.Sprintf("%q is not a level: use error, warn, info, debug or trace", c.Log.Level))
	}

	if c.Status.Listen != "" {
		host, port, err := net.SplitHostPort(c.Status.Listen)
		switch {
		case err != nil || port == "":
			p.at("status.listen", fmt.Sprintf("%q is not an address: use host:port, e.g. 127.0.0.1:9876", c.Status.Listen))
		case !isLoopback(host) && c.Status.TokenFile == "" && c.Status.Token == "":
			p.at("status.listen", fmt.Sprintf("%q is not a loopback address and status.token_file is not set: the agent refuses to start; set status.token_file or listen on 127.0.0.1", c.Status.Listen))
		}
	}
}

// validateDevice checks the device: section (or one devices: entry, whose
// problems rename the keys).
func (c *Config) validateDevice(p *problems) {
	switch c.Device.Backend {
	case BackendISAPI:
		c.validateISAPI(p)
	case BackendLocal:
		c.validateLocal(p)
	case "":
		p.at("device.backend", "missing: set it to isapi (the recorder's HTTP API) or local (the agent runs on the recorder)")
	default:
		p.at("device.backend", fmt.Sprintf("%q is not a backend: use isapi or local", c.Device.Backend))
	}
}

// validateGroups checks the rollout groups (the agent's, or one devices:
// entry's, whose problems rename the keys): no group empty or twice, and,
// when a fleet server is set (fleetURL), what a check-in can carry
// (fleet.CheckList: how many, and each one's length and characters; the
// first problem it finds). Without a fleet server the groups only meet the
// manifest's rollout, whose groups may be longer than a check-in carries.
func (c *Config) validateGroups(p *problems, fleetURL string) {
	if fleetURL != "" {
		if err := fleet.CheckList("groups", c.Groups); err != nil {
			key, msg := fleetProblem(err)
			if key == "" {
				key = "groups"
			}
			p.at(key, msg)
		}
	}
	seenGroup := map[string]bool{}
	for i, g := range c.Groups {
		switch {
		case strings.TrimSpace(g) == "":
			if fleetURL == "" {
				p.at(fmt.Sprintf("groups[%d]", i), "is empty: remove it")
			}
		case seenGroup[g]:
			p.at(fmt.Sprintf("groups[%d]", i), fmt.Sprintf("%q is listed twice: keep one", g))
		}
		seenGroup[g] = true
	}
}

func (c *Config) validateISAPI(p *problems) {
	i := c.Device.ISAPI
	if i.URL == "" {
		p.at("device.isapi.url", "missing: give the recorder's address, e.g. https://192.0.2.10")
	} else if err := checkURL(i.URL, "http", "https"); err != nil {
		p.at("device.isapi.url", err.Error())
	} else if u, _ := url.Parse(i.URL); u.User != nil {
		p.at("device.isapi.url", "must not carry credentials: use username and password_file")
	}
	https := strings.HasPrefix(strings.ToLower(i.URL), "https://")
	if strings.TrimSpace(i.Username) == "" {
		p.at("device.isapi.username", "missing: give the ISAPI account name")
	}
	if i.Password == "" && i.PasswordFile == "" && i.PasswordEnv == "" {
		p.at("device.isapi.password_file", "missing: give the ISAPI password in password_file (recommended), password_env or password")
	}
	oneSource(p, "device.isapi.password", i.Password, i.PasswordFile, i.PasswordEnv)
	if i.AllowBasic && !https {
		p.at("device.isapi.allow_basic", "Basic auth sends the password in clear over http://: use an https:// url or remove allow_basic")
	}
	if i.CertSHA256 != "" {
		if !isHex(i.CertSHA256, 32) {
			p.at("device.isapi.cert_sha256", "not a SHA-256 fingerprint: give 64 hex characters (colons allowed), e.g. from: openssl x509 -noout -fingerprint -sha256")
		}
		if !https && i.URL != "" {
			p.at("device.isapi.cert_sha256", "set but the url is not https://: use an https:// url")
		}
	}
	if i.InsecureSkipVerify && i.CertSHA256 != "" {
		p.at("device.isapi.insecure_skip_verify", "set together with cert_sha256: pinning the fingerprint is the safer choice, remove insecure_skip_verify")
	}
	if i.InsecureSkipVerify && i.CAFile != "" {
		p.at("device.isapi.insecure_skip_verify", "set together with ca_file: remove one of them")
	}
	if i.DownGrace > i.RebootTimeout {
		p.at("device.isapi.down_grace", "longer than reboot_timeout: the device could never be waited for")
	}
}

func (c *Config) validateLocal(p *problems) {
	l := c.Device.Local
	switch {
	case l.IdentityFile == "" && len(l.IdentityCommand) == 0:
		p.at("device.local", "missing identity_file or identity_command: say where the device identity comes from")
	case l.IdentityFile != "" && len(l.IdentityCommand) > 0:
		p.at("device.local.identity_command", "set together with identity_file: keep one")
	}
	if len(l.InstallCommand) == 0 {
		p.at("device.local.install_command", "missing: give the command (as a list: [program, arg, ...]) that installs an image")
	}
	for key, argv := range map[string][]string{
		"device.local.identity_command": l.IdentityCommand,
		"device.local.install_command":  l.InstallCommand,
		"device.local.reboot_command":   l.RebootCommand,
		"device.local.status_command":   l.StatusCommand,
	} {
		if len(argv) > 0 && strings.TrimSpace(argv[0]) == "" {
			p.at(key, "the program (first item) is empty")
		}
	}
}

// oneSource refuses a secret given in more than one way.
func oneSource(p *problems, key, inline, file, env string) {
	n := 0
	for _, s := range []string{inline, file, env} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		p.at(key, fmt.Sprintf("given more than once (%s, %s_file, %s_env): keep one source", lastPart(key), lastPart(key), lastPart(key)))
	}
}

func lastPart(key string) string {
	if i := strings.LastIndex(key, "."); i >= 0 {
		return key[i+1:]
	}
	return key
}

// checkURL checks that s is an absolute URL with one of the schemes.
func checkURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", redactURL(s))
	}
	ok := false
	for _, sc := range schemes {
		if strings.EqualFold(u.Scheme, sc) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%q: the scheme must be %s", redactURL(s), strings.Join(schemes, ", "))
	}
	if strings.EqualFold(u.Scheme, "file") {
		if u.Path == "" {
			return fmt.Errorf("%q has no path: write file:///absolute/path", s)
		}
		return nil
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", redactURL(s))
	}
	return nil
}

// isLoopback reports whether host (from host:port) only accepts local
// connections.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isHex(s string, n int) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == n
}
