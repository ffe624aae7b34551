package nvrsim

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestASiteServesEachRecorderOnItsOwnPort(t *testing.T) {
	recs, err := ParseSiteSpec("2 x iDS-9632NXI-I8/16S 4.1.20 custom\n# the look-alike\niDS-9632NXI-I8/S 4.1.20 standard\n", Config{RebootDelay: 0})
	if err != nil {
		t.Fatal(err)
	}
	site, err := StartSite(recs, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(site.Close)
	if len(site.Recorders) != 3 || site.Names[2] != "nvr-3" || site.Recorder("nvr-2") != site.Recorders[1] {
		t.Fatalf("site %v", site.Names)
	}
	seen := map[string]bool{}
	for i, r := range site.Recorders {
		st := r.State()
		if seen[st.Serial] || seen[r.URL()] {
			t.Errorf("recorder %d shares a serial or an address with another: %s %s", i, st.Serial, r.URL())
		}
		seen[st.Serial], seen[r.URL()] = true, true
		resp, err := http.Get(r.URL() + "/debug/state")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), st.Model) {
			t.Errorf("recorder %d answers %s", i, b)
		}
	}
	if m := site.Recorders[2].State().Model; m != "iDS-9632NXI-I8/S" || site.Recorders[2].State().Variant != "standard" {
		t.Errorf("third recorder is %s", m)
	}
	if err := site.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestASiteSpecRefusesWhatItCannotRun(t *testing.T) {
	for _, spec := range []string{"", "# nothing\n", "0 x M", "abc x M", "M 4.1.20 gold", "M 1 custom extra"} {
		if _, err := ParseSiteSpec(spec, Config{}); err == nil {
			t.Errorf("ParseSiteSpec(%q) accepted it", spec)
		}
	}
}

func FuzzParseSiteSpec(f *testing.F) {
	f.Add("2 x iDS-9632NXI-I8/16S 4.1.20 custom, iDS-9632NXI-I8/S 4.1.20 standard")
	f.Add("# comment\n\n3 x M")
	f.Add("1001 x M")
	f.Fuzz(func(t *testing.T, spec string) {
		recs, err := ParseSiteSpec(spec, Config{})
		if err == nil && (len(recs) == 0 || len(recs) > 1000) {
			t.Fatalf("%d recorders without an error", len(recs))
		}
	})
}
