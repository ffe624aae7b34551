package config

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the configuration file at path, parses and validates it, makes
// relative paths relative to the file's directory, and resolves the secrets
// given by *_file and *_env keys. Secrets never appear in its errors.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w: pass --config or create it from agent.example.yaml", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	c, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.dir = filepath.Dir(abs)
	c.resolvePaths()
	p := &problems{file: path, lines: c.lines}
	c.resolveSecrets(p)
	checkTokenLength(p, "report.token", c.Report.Token)
	checkTokenLength(p, "status.token", c.Status.Token)
	first := map[string]int{}
	for i, k := range c.Manifest.Keys {
		if j, dup := first[k]; dup {
			p.at(fmt.Sprintf("manifest.keys[%d]", i), fmt.Sprintf("%s is the same file as manifest.keys[%d]: a threshold counts distinct keys", k, j))
			continue
		}
		first[k] = i
		if _, err := os.Stat(k); err != nil {
			p.at(fmt.Sprintf("manifest.keys[%d]", i), fmt.Sprintf("cannot read the key file: %v", err))
		}
	}
	if m := c.Manifest; len(first) > 0 && m.Threshold > len(first) {
		p.at("manifest.threshold", fmt.Sprintf("%d signatures required but only %d keys listed in manifest.keys (distinct files): lower the threshold or add keys", m.Threshold, len(first)))
	}
	if c.Device.Backend == BackendISAPI && c.Device.ISAPI.CAFile != "" {
		if _, err := os.Stat(c.Device.ISAPI.CAFile); err != nil {
			p.at("device.isapi.ca_file", fmt.Sprintf("cannot read the CA file: %v", err))
		}
	}
	for i, e := range c.Devices {
		if e.Backend == BackendISAPI && e.ISAPI.CAFile != "" {
			if _, err := os.Stat(e.ISAPI.CAFile); err != nil {
				p.at(fmt.Sprintf("devices[%d].isapi.ca_file", i), fmt.Sprintf("cannot read the CA file: %v", err))
			}
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// resolvePaths makes relative file paths relative to the config's directory:
// a daemon's working directory means nothing.
func (c *Config) resolvePaths() {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(c.dir, *p)
		}
	}
	abs(&c.StateDir)
	abs(&c.Log.Dir)
	abs(&c.Device.ISAPI.PasswordFile)
	abs(&c.Device.ISAPI.CAFile)
	abs(&c.Device.Local.IdentityFile)
	for i := range c.Devices {
		abs(&c.Devices[i].ISAPI.PasswordFile)
		abs(&c.Devices[i].ISAPI.CAFile)
		abs(&c.Devices[i].Local.IdentityFile)
	}
	abs(&c.Report.TokenFile)
	abs(&c.Status.TokenFile)
	for i := range c.Manifest.Keys {
		abs(&c.Manifest.Keys[i])
	}
}

// resolveSecrets reads secrets from their files or environment variables.
func (c *Config) resolveSecrets(p *problems) {
	if c.Device.Backend == BackendISAPI {
		i := &c.Device.ISAPI
		secret(p, "device.isapi.password", &i.Password, i.PasswordFile, i.PasswordEnv)
	}
	for i := range c.Devices {
		if e := &c.Devices[i]; e.Backend == BackendISAPI {
			secret(p, fmt.Sprintf("devices[%d].isapi.password", i), &e.ISAPI.Password, e.ISAPI.PasswordFile, e.ISAPI.PasswordEnv)
		}
	}
	r := &c.Report
	secret(p, "report.token", &r.Token, r.TokenFile, r.TokenEnv)
	if c.Status.TokenFile != "" {
		secret(p, "status.token", &c.Status.Token, c.Status.TokenFile, "")
	}
}

// MinTokenLen is the shortest report or status token accepted: a short
// bearer token can be guessed.
const MinTokenLen = 16

// checkTokenLength refuses a configured token shorter than MinTokenLen; the
// token itself never goes into the message.
func checkTokenLength(p *problems, key, token string) {
	if token != "" && len(token) < MinTokenLen {
		p.at(key, fmt.Sprintf("the token is %d bytes; use at least %d (a shorter one can be guessed), e.g. from: head -c 24 /dev/urandom | base64", len(token), MinTokenLen))
	}
}

// secret fills *dst from file or env; the value is never put in an error.
func secret(p *problems, key string, dst *string, file, env string) {
	switch {
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			p.at(key+"_file", fmt.Sprintf("cannot read the secret file: %v", err))
			return
		}
		v := strings.TrimRight(string(data), "\r\n")
		if v == "" {
			p.at(key+"_file", fmt.Sprintf("%s is empty: write the secret into it", file))
			return
		}
		*dst = v
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			p.at(key+"_env", fmt.Sprintf("environment variable %s is not set or empty: set it in the service environment", env))
			return
		}
		*dst = v
	}
}

// Redacted returns a deep copy with every secret replaced by "<redacted>"
// and passwords in URLs removed, for support bundles and status output.
func (c *Config) Redacted() *Config {
	r := *c
	r.lines = nil
	red := func(s string) string {
		if s == "" {
			return ""
		}
		return Redacted
	}
	// A secret read from a file or variable is shown by its source only.
	if c.Device.ISAPI.PasswordFile != "" || c.Device.ISAPI.PasswordEnv != "" {
		r.Device.ISAPI.Password = ""
	}
	if c.Report.TokenFile != "" || c.Report.TokenEnv != "" {
		r.Report.Token = ""
	}
	r.Device.ISAPI.Password = red(r.Device.ISAPI.Password)
	r.Device.ISAPI.URL = redactURL(c.Device.ISAPI.URL)
	r.Report.Token = red(r.Report.Token)
	r.Report.URL = redactURL(c.Report.URL)
	r.Fleet.URL = redactURL(c.Fleet.URL)
	r.Status.Token = red(c.Status.Token)
	r.Manifest.URLs = mapStrings(c.Manifest.URLs, redactURL)
	r.Manifest.Keys = mapStrings(c.Manifest.Keys, nil)
	r.Groups = mapStrings(c.Groups, nil)
	r.Windows = append([]Window(nil), c.Windows...)
	if c.Devices != nil {
		r.Devices = make([]DeviceEntry, len(c.Devices))
		for i, e := range c.Devices {
			one := (&Config{Device: e.Device}).Redacted()
			e.Device = one.Device
			e.Groups = mapStrings(e.Groups, nil)
			e.Windows = append([]Window(nil), e.Windows...)
			r.Devices[i] = e
		}
	}
	r.Device.Local.IdentityCommand = mapStrings(c.Device.Local.IdentityCommand, nil)
	r.Device.Local.InstallCommand = mapStrings(c.Device.Local.InstallCommand, nil)
	r.Device.Local.RebootCommand = mapStrings(c.Device.Local.RebootCommand, nil)
	r.Device.Local.StatusCommand = mapStrings(c.Device.Local.StatusCommand, nil)
	if c.Policy.Pins != nil {
		r.Policy.Pins = make(map[string][]string, len(c.Policy.Pins))
		for k, v := range c.Policy.Pins {
			r.Policy.Pins[k] = mapStrings(v, nil)
		}
	}
	return &r
}

// RedactedYAML renders the redacted configuration as YAML with the file's
// key names, for the support bundle.
func (c *Config) RedactedYAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.Redacted()); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return b.Bytes(), nil
}

// String renders the configuration without secrets, so that printing a
// Config by mistake leaks nothing.
func (c *Config) String() string {
	b, err := c.RedactedYAML()
	if err != nil {
		return "<config: " + err.Error() + ">"
	}
	return string(b)
}

func mapStrings(in []string, f func(string) string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		if f != nil {
			s = f(s)
		}
		out[i] = s
	}
	return out
}

// redactURL hides the password of a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return Redacted
		}
		return s
	}
	if u.User != nil {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
		return strings.Replace(u.String(), "xxxxx", Redacted, 1)
	}
	return u.String()
}
