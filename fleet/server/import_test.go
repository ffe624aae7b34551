package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
)

// oldReports is an old reports file of n reports on release r1, from
// serials OLD0 to OLD(n-1), with report ids from first on.
func oldReports(first, n int) string {
	var b strings.Builder
	for i := first; i < first+n; i++ {
		fmt.Fprintf(&b, `{"received":"2026-11-30T12:00:00Z","report":{"id":"id%d","time":"2026-11-30T12:00:00Z","device_serial":"OLD%d","model":"m","release_id":"r1","step":"install","result":"failure","codes":["badFlash"],"agent_version":"0.9"}}`+"\n", i, i)
	}
	return b.String()
}

// importFile posts an old reports file and returns the server's count.
func (f *fixture) importFile(lines string) server.ImportResult {
	f.t.Helper()
	st, body := f.request("POST", "/v1/admin/import", lines, nil)
	var res server.ImportResult
	if err := json.Unmarshal([]byte(body), &res); st != http.StatusOK || err != nil {
		f.t.Fatalf("import: %d %s", st, body)
	}
	return res
}

func TestImportingAFileTwiceStoresItOnce(t *testing.T) {
	stores(t, func(t *testing.T, open func(t *testing.T) fleet.Store) {
		f := newFixture(t, open(t), server.Options{})
		if res := f.importFile(oldReports(0, 3)); res.Reports != 3 || res.Already != 0 || res.Devices != 3 {
			t.Fatalf("first import %+v, want 3 reports and 3 devices", res)
		}
		if res := f.importFile(oldReports(0, 3)); res.Reports != 0 || res.Already != 3 || res.Devices != 0 {
			t.Fatalf("the same file again: %+v, want 3 already imported, nothing stored", res)
		}
		// The file grew by two reports since.
		if res := f.importFile(oldReports(0, 5)); res.Reports != 2 || res.Already != 3 || res.Devices != 2 {
			t.Fatalf("the grown file: %+v, want 2 new reports and 3 already imported", res)
		}
		if n := f.reportsOn("r1"); n != 5 {
			t.Fatalf("%d reports on r1, want 5", n)
		}
	})
}

// Two servers on one database importing one file at once store it once
// between them, and each says how many it found already imported.
func TestTwoServersImportingOneFileAtOnceStoreItOnce(t *testing.T) {
	url := pgtestURL(t)
	a := newFixture(t, postgresStore(t, url), server.Options{})
	b := newFixture(t, postgresStore(t, url), server.Options{})
	const n = 200
	lines := oldReports(0, n)
	results := make([]server.ImportResult, 2)
	var wg sync.WaitGroup
	for i, f := range []*fixture{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body := f.request("POST", "/v1/admin/import", lines, nil)
			if st != http.StatusOK || json.Unmarshal([]byte(body), &results[i]) != nil {
				t.Errorf("import on server %d: %d %s", i, st, body)
			}
		}()
	}
	wg.Wait()
	stored, already := results[0].Reports+results[1].Reports, results[0].Already+results[1].Already
	if stored != n || already != n || results[0].Devices+results[1].Devices != n {
		t.Fatalf("imports %+v and %+v: want %d stored and %d already imported between them, each device registered once", results[0], results[1], n, n)
	}
	if got := a.reportsOn("r1"); got != n {
		t.Fatalf("%d reports on r1, want %d", got, n)
	}
}
