package server

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"sort"
	"time"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/reports"
)

//go:embed web/*.html
var webFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Truncate(time.Second).String() + " ago"
	},
	"utc":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"rate": func(c reports.Counts) string { r, ok := c.FailureRate(); return reports.FormatRate(r, ok) },
}).ParseFS(webFS, "web/*.html"))

// DefaultPageRefresh is how often the web page reloads itself.
const DefaultPageRefresh = 10 * time.Second

// webRoutes serves the read-only web page: the fleet at /, one device's
// history at /device/{serial}. It needs the admin token too (HTTP Basic,
// any user name, the token as the password, or a Bearer header): the page
// shows the inventory.
func (s *Server) webRoutes(mux *http.ServeMux) {
	mux.Handle("GET /{$}", s.page(s.handleIndex))
	mux.Handle("GET /device/{serial}", s.page(s.handleDevicePage))
}

func (s *Server) page(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opt.AdminToken == "" {
			http.Error(w, "the web page is off: start the server with --admin-token-file", http.StatusForbidden)
			return
		}
		tok := requestToken(r, true)
		wrong := tok == "" || s.roleOf(tok) == roleNone
		// No token is no guess: a browser asks first without one.
		if tok != "" && wrong && !s.wrongToken(w, r, true) {
			return
		}
		if wrong {
			w.Header().Set("WWW-Authenticate", `Basic realm="fwagent fleet (password: the admin or viewer token)", charset="UTF-8"`)
			http.Error(w, "give the admin or the viewer token as the password", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cache-Control", "no-store")
		h(w, r)
	})
}

type stateCount struct {
	State fleet.State
	Count int
}

type stageRow struct {
	Name    string
	Current bool
	reports.Counts
}

type releaseView struct {
	fleet.Release
	Stages []stageRow
	Total  reports.Counts
}

type indexView struct {
	Now      time.Time
	Refresh  int
	States   []stateCount
	Total    int
	Filter   string
	Devices  []DeviceJSON
	More     bool
	Releases []releaseView
	Pauses   []fleet.PauseEvent
	Counters map[string]int64
}

const pageDevices = 500

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := s.Now()
	v := indexView{Now: now, Refresh: s.refreshSeconds(), Filter: r.URL.Query().Get("state")}
	f := fleet.DeviceFilter{Now: now, Limit: pageDevices + 1}
	if v.Filter != "" {
		st, err := fleet.ParseState(v.Filter)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.State = st
	}
	err := func() error {
		counts, err := s.store.StateCounts(ctx, now)
		if err != nil {
			return err
		}
		for _, st := range fleet.States {
			v.States = append(v.States, stateCount{st, counts[st]})
			v.Total += counts[st]
		}
		ds, err := s.store.Devices(ctx, f)
		if err != nil {
			return err
		}
		if len(ds) > pageDevices {
			ds, v.More = ds[:pageDevices], true
		}
		for _, d := range ds {
			v.Devices = append(v.Devices, ToJSON(d, now))
		}
		if v.Releases, err = s.releaseViews(ctx, now); err != nil {
			return err
		}
		if v.Pauses, err = s.store.Pauses(ctx, "", 20); err != nil {
			return err
		}
		if err := s.FlushCounters(ctx); err != nil {
			return err
		}
		v.Counters, err = s.store.Counters(ctx)
		return err
	}()
	if err != nil {
		s.storeErr.Add(1)
		s.log.WithError(err).Error("fleet database error")
		http.Error(w, "the fleet database is unavailable", http.StatusServiceUnavailable)
		return
	}
	s.render(w, "index.html", v)
}

// releaseViews summarizes every known release by rollout stage.
func (s *Server) releaseViews(ctx context.Context, now time.Time) ([]releaseView, error) {
	rels, err := s.store.Releases(ctx)
	if err != nil {
		return nil, err
	}
	// Releases that reports name but that were never paused nor given a
	// rollout are counted too (as one stage).
	reported, err := s.store.ReportedReleases(ctx)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, r := range rels {
		known[r.ID] = true
	}
	for _, id := range reported {
		if !known[id] {
			rels = append(rels, fleet.Release{ID: id})
		}
	}
	out := make([]releaseView, 0, len(rels))
	for _, rel := range rels {
		recs, err := s.store.Reports(ctx, rel.ID)
		if err != nil {
			return nil, err
		}
		records := make([]reports.Record, len(recs))
		for i, rc := range recs {
			records[i] = ToRecord(rc)
		}
		sum := reports.Summarize(records, rel.ID, rel.Rollout, now)
		rv := releaseView{Release: rel, Total: sum.Total}
		for _, st := range sum.Stages {
			rv.Stages = append(rv.Stages, stageRow{Name: sum.StageName(st.Index), Current: st.Current, Counts: st.Counts})
		}
		out = append(out, rv)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Paused != out[j].Paused {
			return out[i].Paused
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

type deviceView struct {
	Now     time.Time
	Refresh int
	DeviceHistory
}

func (s *Server) handleDevicePage(w http.ResponseWriter, r *http.Request) {
	if err := checkParam("serial", r.PathValue("serial"), fleet.MaxIDLen); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h, err := s.history(r.Context(), r.PathValue("serial"))
	if errors.Is(err, fleet.ErrNotFound) {
		http.Error(w, "unknown serial", http.StatusNotFound)
		return
	}
	if err != nil {
		s.storeErr.Add(1)
		http.Error(w, "the fleet database is unavailable", http.StatusServiceUnavailable)
		return
	}
	s.render(w, "device.html", deviceView{Now: s.Now(), Refresh: s.refreshSeconds(), DeviceHistory: h})
}

func (s *Server) refreshSeconds() int {
	r := s.opt.PageRefresh
	if r <= 0 {
		r = DefaultPageRefresh
	}
	return max(1, int(r/time.Second))
}

func (s *Server) render(w http.ResponseWriter, name string, v any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pages.ExecuteTemplate(w, name, v); err != nil {
		s.log.WithError(err).Error("render " + name)
	}
}
