package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DeviceEntry is one recorder of a site (an entry of devices:): its name,
// its backend settings (the keys of device:) and, optionally, its own
// rollout groups and maintenance windows instead of the agent-wide ones.
type DeviceEntry struct {
	// Name identifies the recorder in logs, output, reports and its state
	// folder (state_dir/devices/NAME).
	Name string `yaml:"name"`
	// Device is the backend, as in the single device: section.
	Device `yaml:",inline"`
	// Groups replace the agent-wide groups for this recorder when set.
	Groups []string `yaml:"groups,omitempty"`
	// Windows replace the agent-wide maintenance windows when set.
	Windows []Window `yaml:"maintenance_windows,omitempty"`

	groupsSet, windowsSet bool
}

// DefaultDeviceName names the one recorder of a configuration written with
// the single device: section.
const DefaultDeviceName = "default"

// DevicesDir is the folder of state_dir holding one state folder per
// recorder of a devices: list.
const DevicesDir = "devices"

var deviceNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// DeviceKeys are the keys of one devices: entry, in the reference's
// words: name, groups and maintenance_windows of their own, and every
// device.* key under devices[].* (the same definitions, so one key has one
// definition whichever form the file uses).
func DeviceKeys() []Key {
	out := []Key{{Path: "devices[].name", Type: "text", Bounds: "1-64 letters, digits, . _ -; unique",
		Doc: "required: the recorder's name in logs, output, reports and its state folder (state_dir/devices/NAME)"}}
	for _, k := range Keys {
		if k.Path == "groups" || k.Path == "maintenance_windows" {
			k.Path = "devices[]." + k.Path
			k.Doc = "overrides the agent-wide " + strings.TrimPrefix(k.Path, "devices[].") + " for this recorder: " + k.Doc
			out = append(out, k)
		}
	}
	for _, k := range Keys {
		if strings.HasPrefix(k.Path, "device.") {
			k.Path = "devices[]." + strings.TrimPrefix(k.Path, "device.")
			out = append(out, k)
		}
	}
	return out
}

// devicesKey is the definition of devices: (a list of mappings decoded
// against the device keys).
func devicesKey() Key {
	return Key{Path: "devices", Type: "list of recorders",
		Doc:   "a site: one entry per recorder (name, backend, isapi or local, optional groups and maintenance_windows); instead of device:, see the devices[] keys below and docs/site-gateway.md",
		apply: func(c *Config) { c.Devices = nil }}
}

// The decoder of devices: uses Keys itself, so it is set once Keys exists.
func init() {
	for i := range Keys {
		if Keys[i].Path == "devices" {
			Keys[i].decode = func(d *decoder, n *yaml.Node, key string, c *Config) {
				c.Devices = d.devices(n, key)
			}
		}
	}
}

// devices decodes the devices: list. Each entry starts from the defaults of
// the device.* keys.
func (d *decoder) devices(n *yaml.Node, key string) []DeviceEntry {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, key, "expected a list of recorders ('- name: ...' per recorder), got %s", describe(n))
		return nil
	}
	out := make([]DeviceEntry, 0, len(n.Content))
	for i, en := range n.Content {
		en = resolve(en)
		ek := fmt.Sprintf("%s[%d]", key, i)
		d.p.lines[ek] = en.Line
		if en.Kind != yaml.MappingNode {
			d.fail(en, ek, "expected a mapping (name, backend, isapi, ...), got %s", describe(en))
			continue
		}
		tmp := Default()
		e := DeviceEntry{}
		seen := map[string]bool{}
		for j := 0; j+1 < len(en.Content); j += 2 {
			kn, vn := resolve(en.Content[j]), resolve(en.Content[j+1])
			if kn.Kind != yaml.ScalarNode {
				d.fail(kn, ek, "keys must be plain words, got %s", describe(kn))
				continue
			}
			k := ek + "." + kn.Value
			if seen[kn.Value] {
				d.fail(kn, k, "written twice: keep one")
				continue
			}
			seen[kn.Value] = true
			d.p.lines[k] = kn.Line
			switch kn.Value {
			case "name":
				if vn.Kind != yaml.ScalarNode || isNull(vn) {
					d.fail(vn, k, "expected a name, got %s", describe(vn))
					continue
				}
				e.Name = strings.TrimSpace(vn.Value)
			case "groups", "maintenance_windows":
				def, _ := lookup(kn.Value)
				if isNull(vn) {
					continue
				}
				def.decode(d, vn, k, tmp)
				e.groupsSet = e.groupsSet || kn.Value == "groups"
				e.windowsSet = e.windowsSet || kn.Value == "maintenance_windows"
			default:
				def, ok := lookup("device." + kn.Value)
				if !ok {
					d.fail(kn, k, "unknown key%s", suggest(kn.Value, append([]string{"name", "groups", "maintenance_windows"}, keyChildren["device"]...)))
					continue
				}
				switch {
				case def.Section():
					d.sectionAs(vn, def.Path, k, tmp)
				case isNull(vn):
				default:
					def.decode(d, vn, k, tmp)
				}
			}
		}
		e.Device = tmp.Device
		e.Groups = tmp.Groups
		e.Windows = tmp.Windows
		out = append(out, e)
	}
	return out
}

// normalizeDevices trims the entries' values like the single device's.
func (c *Config) normalizeDevices() {
	for i := range c.Devices {
		e := &c.Devices[i]
		tmp := Config{Device: e.Device, Groups: e.Groups}
		tmp.normalize()
		e.Device, e.Groups = tmp.Device, tmp.Groups
	}
}

// validateDevices checks every entry of devices: as the device: section is
// checked, under its own key names, and refuses two entries for one
// recorder.
func (c *Config) validateDevices(p *problems) {
	if _, both := c.lines["device"]; both {
		p.at("device", "set together with devices: describe every recorder in devices: (a site) or one in device:, not both")
	}
	names := map[string]int{}
	urls := map[string]int{}
	local := -1
	for i, e := range c.Devices {
		prefix := fmt.Sprintf("devices[%d]", i)
		switch {
		case e.Name == "":
			p.at(prefix, "missing name: give each recorder a unique name, e.g. name: nvr-1")
		case !deviceNameRe.MatchString(e.Name):
			p.at(prefix+".name", fmt.Sprintf("%q is not a usable name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (it names a folder)", e.Name))
		default:
			if j, dup := names[strings.ToLower(e.Name)]; dup {
				p.at(prefix+".name", fmt.Sprintf("%q is also the name of devices[%d]: names must be unique (they compare without case)", e.Name, j))
			} else {
				names[strings.ToLower(e.Name)] = i
			}
		}
		q := &problems{file: p.file, lines: p.lines, rename: func(k string) string {
			if k == "device" || strings.HasPrefix(k, "device.") {
				return prefix + strings.TrimPrefix(k, "device")
			}
			if k == "groups" || k == "maintenance_windows" || strings.HasPrefix(k, "groups[") || strings.HasPrefix(k, "maintenance_windows[") {
				return prefix + "." + k
			}
			return k
		}}
		tmp := Config{Device: e.Device, Groups: e.Groups}
		for _, k := range Keys {
			if k.check == nil || !strings.HasPrefix(k.Path, "device.") || (strings.HasPrefix(k.Path, "device.isapi.") && e.Backend != BackendISAPI) ||
				(strings.HasPrefix(k.Path, "device.local.") && e.Backend != BackendLocal) {
				continue
			}
			if msg := k.check(&tmp); msg != "" {
				q.at(k.Path, msg)
			}
		}
		tmp.validateDevice(q)
		tmp.validateGroups(q, c.Fleet.URL)
		p.errs = append(p.errs, q.errs...)
		switch e.Backend {
		case BackendISAPI:
			if e.ISAPI.URL == "" {
				break
			}
			u := sameRecorderURL(e.ISAPI.URL)
			if j, dup := urls[u]; dup {
				p.at(prefix+".isapi.url", fmt.Sprintf("devices[%d] has the same url: two entries would update one recorder twice; keep one", j))
			} else {
				urls[u] = i
			}
		case BackendLocal:
			if local >= 0 {
				p.at(prefix+".backend", fmt.Sprintf("devices[%d] already uses the local backend: the agent runs on one recorder only; use isapi for the others", local))
			} else {
				local = i
			}
		}
	}
}

// sameRecorderURL reduces a recorder URL to what identifies the recorder:
// the host and port (default port made explicit), without case.
func sameRecorderURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" {
		return strings.ToLower(strings.TrimRight(s, "/"))
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return host + ":" + port + strings.TrimRight(u.EscapedPath(), "/")
}

// IsSite reports whether the file lists its recorders in devices:.
func (c *Config) IsSite() bool { return len(c.Devices) > 0 }

// Recorder is one recorder of the site with its effective configuration.
type Recorder struct {
	// Name is the recorder's name (DefaultDeviceName for the device: form).
	Name string
	// Config is the agent-wide configuration with this recorder's device,
	// groups, maintenance windows and state folder: what a one-recorder
	// agent would read.
	Config *Config
}

// Recorders returns every recorder the configuration names, in file order.
// The device: form is a site of one whose state folder is state_dir itself
// (the layout of earlier versions, so an interrupted update resumes after
// an upgrade); each entry of devices: gets state_dir/devices/NAME.
func (c *Config) Recorders() []Recorder {
	if !c.IsSite() {
		return []Recorder{{Name: DefaultDeviceName, Config: c}}
	}
	out := make([]Recorder, 0, len(c.Devices))
	for _, e := range c.Devices {
		r := *c
		r.Devices = nil
		r.Device = e.Device
		if e.groupsSet {
			r.Groups = e.Groups
		}
		if e.windowsSet {
			r.Windows = e.Windows
		}
		r.StateDir = filepath.Join(c.StateDir, DevicesDir, e.Name)
		r.lines = renameLines(c.lines, e.Name, c.Devices)
		out = append(out, Recorder{Name: e.Name, Config: &r})
	}
	return out
}

// renameLines maps the lines of the entry named name back to device.* keys,
// so errors about a recorder's derived configuration still find the line.
func renameLines(lines map[string]int, name string, entries []DeviceEntry) map[string]int {
	idx := -1
	for i, e := range entries {
		if e.Name == name {
			idx = i
		}
	}
	// Only the agent-wide keys and this entry's: copying every entry's
	// lines into every recorder would grow with the square of the site.
	out := map[string]int{}
	prefix := fmt.Sprintf("devices[%d]", idx)
	for k, v := range lines {
		switch {
		case strings.HasPrefix(k, prefix+"."):
			out[k] = v
			out["device"+strings.TrimPrefix(k, prefix)] = v
		case !strings.HasPrefix(k, "devices["):
			out[k] = v
		}
	}
	return out
}
