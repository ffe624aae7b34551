package manifest

import (
	"testing"

	"github.com/fwagent/fwagent/verify"
)

func TestTargetCarriesWhatThePolicyNeeds(t *testing.T) {
	m, err := ParsePayload(validPayload(t), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := m.Releases[0]
	got := r.Target()
	if got.ID != r.ID || got.Version != "4.1.25" || got.Build != "200316" || got.Variant != verify.Custom ||
		got.Size != r.Image.Size || got.SHA256 != r.Image.SHA256 || got.MinVersion != "4.0.0" || got.MaxVersion != "4.1.24" ||
		len(got.Models) != 1 || got.Models[0] != "iDS-9632NXI-I8/16S" {
		t.Fatalf("target %+v from %+v", got, r)
	}
	got.Models[0] = "changed"
	if r.Models[0] == "changed" {
		t.Fatal("Target shares the models slice with the manifest")
	}
	r.Requires = nil
	if got := r.Target(); got.MinVersion != "" || got.MaxVersion != "" {
		t.Fatalf("target without requires %+v", got)
	}
}
