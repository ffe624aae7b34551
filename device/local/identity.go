package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fwagent/fwagent/device"
)

// identityKeys maps accepted key names to Identity fields.
var identityKeys = map[string]string{
	"model":                "model",
	"serial":               "serial",
	"serial_number":        "serial",
	"serialnumber":         "serial",
	"firmware_version":     "firmware_version",
	"firmwareversion":      "firmware_version",
	"firmware_build":       "firmware_build",
	"firmwarereleaseddate": "firmware_build",
	"device_type":          "device_type",
	"devicetype":           "device_type",
}

// ParseIdentity reads an identity written as key=value lines (blank lines
// and lines starting with # are skipped, values may be double-quoted) or as
// a JSON object of strings. model and firmware_version are required; every
// key is kept in Raw.
func ParseIdentity(b []byte) (device.Identity, error) {
	if !utf8.Valid(b) {
		return device.Identity{}, errors.New("identity is not UTF-8 text")
	}
	raw := map[string]string{}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(t, &m); err != nil {
			return device.Identity{}, fmt.Errorf("identity JSON: %v", err)
		}
		for k, v := range m {
			switch x := v.(type) {
			case string:
				raw[k] = strings.TrimSpace(x)
			case float64:
				raw[k] = strconv.FormatFloat(x, 'f', -1, 64)
			case bool:
				raw[k] = strconv.FormatBool(x)
			default:
				return device.Identity{}, fmt.Errorf("identity JSON key %q must be a string", k)
			}
		}
	} else {
		for n, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || k == "" {
				return device.Identity{}, fmt.Errorf("identity line %d is not key=value: %q", n+1, truncate(line))
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
			}
			if _, dup := raw[k]; dup {
				return device.Identity{}, fmt.Errorf("identity line %d repeats the key %q", n+1, truncate(k))
			}
			raw[k] = v
		}
	}
	fields := map[string]string{}
	for k, v := range raw {
		f, ok := identityKeys[strings.ToLower(k)]
		if !ok {
			continue
		}
		if old, dup := fields[f]; dup && old != v {
			return device.Identity{}, fmt.Errorf("identity gives %s twice, differently", f)
		}
		fields[f] = v
	}
	id := device.Identity{
		Model:           fields["model"],
		Serial:          fields["serial"],
		FirmwareVersion: fields["firmware_version"],
		FirmwareBuild:   fields["firmware_build"],
		DeviceType:      fields["device_type"],
		Raw:             raw,
	}
	var missing []string
	if id.Model == "" {
		missing = append(missing, "model")
	}
	if id.FirmwareVersion == "" {
		missing = append(missing, "firmware_version")
	}
	if len(missing) > 0 {
		return device.Identity{}, fmt.Errorf("identity lacks %s: the device cannot be identified safely", strings.Join(missing, " and "))
	}
	return id, nil
}

// parseStatus reads the status command's upgrading= and percent= lines.
func parseStatus(b []byte) (device.InstallStatus, error) {
	var st device.InstallStatus
	seen := false
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "upgrading":
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return st, fmt.Errorf("upgrading=%q, want true or false", truncate(v))
			}
			st.Upgrading, seen = b, true
		case "percent":
			p, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "%")))
			if err != nil || p < 0 || p > 100 {
				return st, fmt.Errorf("percent=%q, want 0-100", truncate(v))
			}
			st.Percent = p
		}
	}
	if !seen {
		return st, errors.New("no upgrading=true|false line")
	}
	return st, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
