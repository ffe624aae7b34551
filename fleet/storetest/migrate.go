package storetest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
)

// MigrateImportCopies checks migration 00002 on a database that holds
// copies of imported reports (an import run twice before it): db is an
// empty database, migrated here to version 1 with fsys (the store's
// migration files) and given copies, and open opens the store on it,
// which migrates it on. The first copy of each imported report stays,
// the others go, agents' reports all stay, and a new import of a
// remaining report id stores nothing.
func MigrateImportCopies(t *testing.T, db *sql.DB, dialect goose.Dialect, fsys fs.FS, open func(t *testing.T) fleet.Store) {
	ctx := context.Background()
	p, err := goose.NewProvider(dialect, db, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	row := func(received time.Time, id, key string) string {
		body, err := json.Marshal(fleet.Report{Report: report.Report{ID: id, Time: t0, DeviceSerial: "SN1", ReleaseID: "r1", Step: "confirm", Result: fleet.ResultInstalled}})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("(%d, 'SN1', 'r1', 0, '%s', '%s', 'installed', '%s')", received.UnixMicro(), id, key, body)
	}
	for _, v := range []string{
		row(t0, "a", fleet.ImportKeyID),
		row(t0.Add(time.Second), "b", fleet.ImportKeyID),
		row(t0.Add(2*time.Second), "a", fleet.ImportKeyID), // the second import
		row(t0.Add(3*time.Second), "b", fleet.ImportKeyID),
		row(t0.Add(4*time.Second), "a", fleet.ImportKeyID), // a third
		row(t0.Add(5*time.Second), "a", "k"),               // agents' reports: never touched
		row(t0.Add(6*time.Second), "a", "k"),
	} {
		if _, err := db.ExecContext(ctx, "INSERT INTO reports (received, serial, release_id, seq, report_id, key_id, result, body) VALUES "+v); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t)
	got, err := s.Reports(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, r := range got {
		summary = append(summary, fmt.Sprintf("%s/%s/%s", r.Report.ID, r.KeyID, r.Received.Sub(t0)))
	}
	want := []string{"a/import/0s", "b/import/1s", "a/k/5s", "a/k/6s"}
	if !reflect.DeepEqual(summary, want) {
		t.Fatalf("reports after the migration: %v, want %v (the first copy of each import, every agent's report)", summary, want)
	}
	var n int
	if err := s.Update(ctx, func(tx fleet.Tx) (err error) {
		n, err = tx.ImportReports(ctx, []fleet.ReportRecord{got[0]})
		return err
	}); err != nil || n != 0 {
		t.Fatalf("importing a again after the migration stored %d, %v; want 0", n, err)
	}
}
