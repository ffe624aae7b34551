package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const site = `
state_dir: /var/lib/fwagent
groups: [all]
maintenance_windows: ["Sat 02:00-04:00"]
devices:
  - name: nvr-1
    backend: isapi
    isapi:
      url: https://192.0.2.10
      username: admin
      password_file: pw1
  - name: nvr-2
    backend: isapi
    isapi:
      url: https://192.0.2.11
      username: admin
      password_file: pw2
      request_timeout: 5s
    groups: [pilot]
    maintenance_windows: ["Sun 03:00-05:00"]
install:
  max_parallel: 3
`

func TestASiteGivesEachRecorderItsOwnConfiguration(t *testing.T) {
	c, err := Parse([]byte(site), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsSite() || c.Install.MaxParallel != 3 || c.Install.StopAfterFailures != 2 {
		t.Fatalf("site %v, install %+v", c.IsSite(), c.Install)
	}
	rs := c.Recorders()
	if len(rs) != 2 || rs[0].Name != "nvr-1" || rs[1].Name != "nvr-2" {
		t.Fatalf("recorders %+v", rs)
	}
	one, two := rs[0].Config, rs[1].Config
	if one.StateDir != filepath.Join("/var/lib/fwagent", "devices", "nvr-1") || two.StateDir != filepath.Join("/var/lib/fwagent", "devices", "nvr-2") {
		t.Errorf("state dirs %s, %s", one.StateDir, two.StateDir)
	}
	if one.Device.ISAPI.URL != "https://192.0.2.10" || one.Device.ISAPI.RequestTimeout != 30*time.Second {
		t.Errorf("nvr-1 device %v", one.Device.ISAPI)
	}
	if two.Device.ISAPI.RequestTimeout != 5*time.Second {
		t.Errorf("nvr-2 request_timeout %s, want the explicit 5s", two.Device.ISAPI.RequestTimeout)
	}
	if strings.Join(one.Groups, ",") != "all" || strings.Join(two.Groups, ",") != "pilot" {
		t.Errorf("groups %v / %v: nvr-2 overrides, nvr-1 inherits", one.Groups, two.Groups)
	}
	if one.Windows[0].String() == two.Windows[0].String() {
		t.Errorf("nvr-2's windows should override: %v / %v", one.Windows, two.Windows)
	}
	if one.IsSite() || two.IsSite() {
		t.Error("a recorder's configuration is a site of one")
	}
	if err := one.Validate(); err != nil {
		t.Errorf("a recorder's configuration does not validate: %v", err)
	}
}

func TestTheSingleDeviceFormIsASiteOfOneInStateDir(t *testing.T) {
	c, err := Parse([]byte(minimal), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs := c.Recorders()
	if len(rs) != 1 || rs[0].Name != DefaultDeviceName || rs[0].Config != c || rs[0].Config.StateDir != DefaultStateDir {
		t.Fatalf("recorders %+v", rs)
	}
}

func TestASiteRefusesAmbiguousRecorders(t *testing.T) {
	entry := func(name, url string) string {
		return "  - name: " + name + "\n    backend: isapi\n    isapi:\n      url: " + url + "\n      username: admin\n      password_file: pw\n"
	}
	local := "  - name: here\n    backend: local\n    local:\n      identity_file: /etc/id\n      install_command: [install]\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"a name given twice", "devices:\n" + entry("a", "https://192.0.2.1") + entry("A", "https://192.0.2.2"),
			`agent.yaml:8: devices[1].name: "A" is also the name of devices[0]`},
		{"one recorder listed twice by url", "devices:\n" + entry("a", "https://192.0.2.1/") + entry("b", "https://192.0.2.1:443"),
			"agent.yaml:11: devices[1].isapi.url: devices[0] has the same url"},
		{"the local backend twice", "devices:\n" + local + strings.ReplaceAll(local, "here", "there"),
			"agent.yaml:8: devices[1].backend: devices[0] already uses the local backend"},
		{"device and devices both", minimal + "devices:\n" + entry("a", "https://192.0.2.1"),
			"agent.yaml:2: device: set together with devices:"},
		{"an entry without a name", "devices:\n  - backend: isapi\n    isapi: {url: https://192.0.2.1, username: a, password_file: p}\n",
			"agent.yaml:2: devices[0]: missing name"},
		{"a name that is not a folder", "devices:\n" + entry("../x", "https://192.0.2.1"),
			`agent.yaml:2: devices[0].name: "../x" is not a usable name`},
		{"an unknown key in an entry", "devices:\n" + entry("a", "https://192.0.2.1") + "    colour: red\n",
			"agent.yaml:8: devices[0].colour: unknown key"},
		{"a bad value in an entry", "devices:\n" + entry("a", "https://192.0.2.1") + "    isapi:\n      retry_max: -1\n",
			"devices[0].isapi: written twice"},
		{"a bound of a device key", "devices:\n" + strings.Replace(entry("a", "https://192.0.2.1"), "password_file: pw\n", "password_file: pw\n      retry_max: -1\n", 1),
			"agent.yaml:8: devices[0].isapi.retry_max: -1 is too small"},
		{"a missing url", "devices:\n  - name: a\n    backend: isapi\n    isapi:\n      username: admin\n      password_file: pw\n",
			"agent.yaml:4: devices[0].isapi.url: missing"},
		{"max_parallel 0", "devices:\n" + entry("a", "https://192.0.2.1") + "install:\n  max_parallel: 0\n",
			"agent.yaml:9: install.max_parallel: 0 is too small (at least 1)"},
		{"devices not a list", "devices: {name: a}\n", "agent.yaml:1: devices: expected a list of recorders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "agent.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadResolvesEachRecordersSecretAndRedactsIt(t *testing.T) {
	dir := t.TempDir()
	for name, pw := range map[string]string{"pw1": "first-secret", "pw2": "second-secret"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rs := c.Recorders()
	if rs[0].Config.Device.ISAPI.Password != "first-secret" || rs[1].Config.Device.ISAPI.Password != "second-secret" {
		t.Fatal("each recorder's password comes from its own file")
	}
	out := c.String()
	if strings.Contains(out, "first-secret") || strings.Contains(out, "second-secret") || !strings.Contains(out, "nvr-2") {
		t.Fatalf("redacted config:\n%s", out)
	}
}
