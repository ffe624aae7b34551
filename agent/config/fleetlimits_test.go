package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/fleet"
)

// fleetSection names a fleet server; fleetAt is minimal with it (its
// fleet: section ends the file, so a case can add fleet keys after it).
const (
	fleetSection = "fleet:\n  url: https://fleet.example:8471\n"
	fleetAt      = minimal + fleetSection
)

// listOf is a YAML flow list of n items made by item.
func listOf(n int, item func(i int) string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = item(i)
	}
	return "[" + strings.Join(items, ", ") + "]"
}

func TestAValueACheckInCannotCarryIsRefusedWhenTheConfigLoads(t *testing.T) {
	long := func(n int) func(int) string {
		return func(i int) string { return fmt.Sprintf("g%0*d", n-1, i) }
	}
	cases := []struct{ name, yaml, want string }{
		{"a site name over 128 bytes", fleetAt + "  site: " + strings.Repeat("s", 129) + "\n",
			"agent.yaml:10: fleet.site: is 129 bytes long, the limit is 128: shorten it (a rule of the fleet protocol: check-ins carry this value)"},
		{"a site name over 128 bytes in two-byte characters", fleetAt + "  site: " + strings.Repeat("é", 65) + "\n",
			"fleet.site: is 130 bytes long, the limit is 128: shorten it"},
		{"a site name with a tab", fleetAt + "  site: \"north\\tgate\"\n",
			"fleet.site: holds the control character U+0009 at byte 5: use text without control characters"},
		{"a site name with a C1 control character", fleetAt + "  site: \"north\\x85gate\"\n",
			"fleet.site: holds the control character U+0085 at byte 5"},
		{"a site name with the replacement character", fleetAt + "  site: \"north\\uFFFDgate\"\n",
			"fleet.site: holds U+FFFD (the mark of an invalid character) at byte 5: use valid text"},
		{"a group over 64 bytes", fleetAt + "groups: [pilot, " + strings.Repeat("g", 65) + "]\n",
			"agent.yaml:10: groups[1]: is 65 bytes long, the limit is 64: shorten it (a rule of the fleet protocol: check-ins carry this value)"},
		{"an empty group", minimal + "groups: [pilot, \"\"]\n",
			"agent.yaml:8: groups[1]: is empty: remove it"},
		{"a group of spaces", minimal + "groups: [pilot, \"  \"]\n",
			"groups[1]: is empty: remove it"},
		{"a group with a line break", fleetAt + "groups: [\"pi\\nlot\"]\n",
			"groups[0]: holds the control character U+000A at byte 2"},
		{"33 groups", fleetAt + "groups: " + listOf(33, long(3)) + "\n",
			"agent.yaml:10: groups: has 33 items, the limit is 32: remove some"},
		{"a group listed twice", minimal + "groups: [pilot, pilot]\n",
			`groups[1]: "pilot" is listed twice: keep one`},
		{"a recorder's group over 64 bytes", strings.Replace(site, "groups: [pilot]", "groups: ["+strings.Repeat("g", 65)+"]", 1) + fleetSection,
			"agent.yaml:19: devices[1].groups[0]: is 65 bytes long, the limit is 64"},
		{"a recorder's 33 groups", strings.Replace(site, "groups: [pilot]", "groups: "+listOf(33, long(3)), 1) + fleetSection,
			"agent.yaml:19: devices[1].groups: has 33 items, the limit is 32"},
		{"a check-in interval over 366 days", fleetAt + "  checkin_interval: 367d\n",
			"agent.yaml:10: fleet.checkin_interval: 367d is longer than 366d, the longest interval a check-in can announce to the fleet server: shorten it"},
		{"polls over 366 days apart with a fleet server", fleetAt + "poll:\n  interval: 300d\n  jitter: 67d\n",
			"agent.yaml:11: poll.interval: 300d plus poll.jitter (67d) is longer than 366d, the longest interval a check-in can announce to the fleet server (fleet.url is set): shorten them"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused, naming the key", func(t *testing.T) { refused(t, tc.yaml, tc.want) })
	}
}

func TestGroupsAreCheckedAgainstTheFleetProtocolOnlyWithAFleetServer(t *testing.T) {
	// Without fleet.url no check-in carries the groups: they meet only the
	// manifest's rollout, whose groups may be up to 128 bytes.
	long := strings.Repeat("g", 100)
	yaml := minimal + "groups: [" + long + "]\n"
	c, err := Parse([]byte(yaml), "agent.yaml")
	if err != nil {
		t.Fatalf("a 100-byte group without a fleet server: %v", err)
	}
	if c.Groups[0] != long {
		t.Fatalf("groups = %q, want the group as written", c.Groups)
	}
	many := minimal + "groups: " + listOf(40, func(i int) string { return fmt.Sprintf("g%d", i) }) + "\n"
	if _, err := Parse([]byte(many), "agent.yaml"); err != nil {
		t.Fatalf("40 groups without a fleet server: %v", err)
	}
}

func TestASiteNameOfInvalidUTF8IsRefused(t *testing.T) {
	// YAML files are UTF-8: only a Config built in code can hold this.
	c, err := Parse([]byte(minimal), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Fleet.Site = "north\xffgate"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "fleet.site: is not valid UTF-8: use UTF-8 text") {
		t.Fatalf("Validate = %v, want fleet.site refused as invalid UTF-8", err)
	}
}

func TestAConfigAtTheFleetProtocolsLimitsLoadsAndItsCheckInNeedsNoFitting(t *testing.T) {
	site := strings.Repeat("é", fleet.MaxIDLen/2) // 128 bytes
	group := func(i int) string { return fmt.Sprintf("g%0*d", fleet.MaxListItemLen-1, i) }
	yaml := fleetAt + "  site: " + site + "\n  checkin_interval: 366d\n" +
		"poll:\n  interval: 365d\n  jitter: 1d\n" +
		"groups: " + listOf(fleet.MaxListItems, group) + "\n"
	c, err := Parse([]byte(yaml), "agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Fleet.Site) != fleet.MaxIDLen || len(c.Groups) != fleet.MaxListItems || len(c.Groups[0]) != fleet.MaxListItemLen {
		t.Fatalf("site %d bytes, %d groups of %d bytes: the test does not sit at the limits", len(c.Fleet.Site), len(c.Groups), len(c.Groups[0]))
	}
	iv := max(c.Fleet.CheckInInterval, c.Poll.Interval+c.Poll.Jitter)
	ci := fleet.CheckIn{Seq: 1, Time: time.Now(), Serial: "SN1", Model: "m", AgentVersion: "1.0",
		Site: c.Fleet.Site, Groups: c.Groups, IntervalSeconds: int64(iv / time.Second)}
	if changed := ci.Fit(); len(changed) > 0 {
		t.Errorf("Fit changed %v of a check-in from a config that loaded", changed)
	}
	if err := ci.Validate(); err != nil {
		t.Errorf("the server would refuse the check-in: %v", err)
	}
}

func TestEveryUsableRecorderNameFitsACheckIn(t *testing.T) {
	// devices[].name is the check-in's device_name; its own rule (a folder
	// name) is stricter than the protocol's.
	longest := strings.Repeat("n", 64)
	if !deviceNameRe.MatchString(longest) || deviceNameRe.MatchString(longest+"n") {
		t.Fatal("the longest usable name is no longer 64 bytes: update this test")
	}
	if err := fleet.CheckString("device_name", longest, fleet.MaxIDLen); err != nil {
		t.Fatalf("a usable recorder name the server would refuse: %v", err)
	}
}
