package agent

import (
	"strings"
	"testing"

	"github.com/fwagent/fwagent/device"
)

// A recorder without a serial is named by a pseudonym of its MAC address,
// never by the address (personal data): in reports, the fleet check-in and
// the backup file names (which the hash-chained audit trail quotes).
func TestASerialLessRecorderIsNamedByAPseudonymOfItsMAC(t *testing.T) {
	const mac = "00:1B:44:11:3A:B7"
	id := device.Identity{Raw: map[string]string{"macAddress": mac}}
	got := reportSerial(id)
	if !strings.HasPrefix(got, "mac-sha256:") || len(got) != len("mac-sha256:")+16 {
		t.Fatalf("reportSerial = %q, want mac-sha256: and 16 hex digits", got)
	}
	if other := reportSerial(device.Identity{Raw: map[string]string{"macAddress": " " + strings.ToLower(mac) + " "}}); other != got {
		t.Errorf("the pseudonym depends on case or spaces: %q vs %q", other, got)
	}
	if reportSerial(device.Identity{Raw: map[string]string{"macAddress": "00:1b:44:11:3a:b8"}}) == got {
		t.Error("two MACs share a pseudonym")
	}
	for _, s := range []string{got, backupSerial(id)} {
		low := strings.ToLower(s)
		for _, part := range []string{"00:1b:44", "00_1b_44", "001b44", "1b:44:11:3a:b7"} {
			if strings.Contains(low, part) {
				t.Errorf("%q holds the MAC address", s)
			}
		}
	}
	if got := reportSerial(device.Identity{Serial: " DS-1 ", Raw: map[string]string{"macAddress": mac}}); got != "DS-1" {
		t.Errorf("a serial is used as it is: %q", got)
	}
}
