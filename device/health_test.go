package device

import "testing"

func TestClassifyDisk(t *testing.T) {
	tests := []struct {
		status string
		want   DiskClass
	}{
		{"ok", DiskHealthy}, {"OK", DiskHealthy}, {" idle ", DiskHealthy}, {"Sleeping", DiskHealthy},
		{"formating", DiskBusy}, {"formatting", DiskBusy}, {"reparing", DiskBusy}, {"Repairing", DiskBusy},
		{"error", DiskBad}, {"abnormal", DiskBad}, {"offline", DiskBad}, {"smartFailed", DiskBad}, {"SMARTFAILED", DiskBad},
		{"mismatch", DiskBad}, {"notexist", DiskBad}, {"exception", DiskBad}, {"unformatted", DiskBad},
		{"uninitialized", DiskBad}, {"locked", DiskBad},
		{"", DiskUnknown}, {"healthy", DiskUnknown}, {"ok!", DiskUnknown}, {"degraded", DiskUnknown},
	}
	for _, tt := range tests {
		t.Run("status "+tt.status+" is "+string(tt.want), func(t *testing.T) {
			if got := ClassifyDisk(tt.status); got != tt.want {
				t.Errorf("ClassifyDisk(%q) = %s, want %s", tt.status, got, tt.want)
			}
		})
	}
}

func TestDiskClassRankOrdersBestToWorst(t *testing.T) {
	order := []DiskClass{DiskHealthy, DiskBusy, DiskUnknown, DiskBad}
	for i := 1; i < len(order); i++ {
		if order[i-1].Rank() >= order[i].Rank() {
			t.Errorf("%s ranks %d, not better than %s (%d)", order[i-1], order[i-1].Rank(), order[i], order[i].Rank())
		}
	}
}

func TestHealthHelpers(t *testing.T) {
	h := Health{
		Disks:       []Disk{{ID: "1", Status: "ok"}, {ID: "2", Status: "formating"}, {ID: "3", Status: "weird"}},
		Channels:    []Channel{{ID: "1", Online: true}, {ID: "2"}, {ID: "3", Online: true}},
		Unsupported: []string{PartChannels},
	}
	if b := h.BusyDisks(); len(b) != 1 || b[0].ID != "2" {
		t.Errorf("busy disks %+v, want disk 2", b)
	}
	if on := h.OnlineChannels(); len(on) != 2 || on[0] != "1" || on[1] != "3" {
		t.Errorf("online channels %v", on)
	}
	if h.Supports(PartChannels) || !h.Supports(PartDisks) {
		t.Error("Supports disagrees with Unsupported")
	}
}
