package nvrsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// SiteRecorder is one recorder of a simulated site: its name (the name an
// agent's devices: entry would give it) and its configuration.
type SiteRecorder struct {
	Name   string
	Config Config
}

// Site is a whole site of simulated recorders served by one process, each
// on its own port, as a gateway host sees the recorders in its rack.
type Site struct {
	// Recorders are the running recorders, in the order they were given.
	Recorders []*Server
	// Names are their names, in the same order.
	Names []string
}

// StartSite starts every recorder on 127.0.0.1: on consecutive ports from
// basePort, or on free ports when basePort is 0. A recorder without a
// serial gets a distinct one (SIM0000000001, ...), so that no two answer
// as the same device. On an error the recorders already started are
// stopped.
func StartSite(recorders []SiteRecorder, basePort int) (*Site, error) {
	s := &Site{}
	for i, r := range recorders {
		cfg := r.Config
		if cfg.Serial == "" {
			cfg.Serial = fmt.Sprintf("SIM%010d", i+1)
		}
		addr := "127.0.0.1:0"
		if basePort > 0 {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(basePort+i))
		}
		srv, err := Listen(addr, cfg)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("nvrsim: recorder %d (%s): %w", i+1, r.Name, err)
		}
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("nvr-%d", i+1)
		}
		s.Recorders = append(s.Recorders, srv)
		s.Names = append(s.Names, name)
	}
	return s, nil
}

// Recorder returns the recorder with that name, or nil.
func (s *Site) Recorder(name string) *Server {
	for i, n := range s.Names {
		if n == name {
			return s.Recorders[i]
		}
	}
	return nil
}

// Close stops every recorder.
func (s *Site) Close() {
	for _, r := range s.Recorders {
		_ = r.Close()
	}
}

// Shutdown stops every recorder gracefully.
func (s *Site) Shutdown(ctx context.Context) error {
	var errs []error
	for _, r := range s.Recorders {
		errs = append(errs, r.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// ParseSiteSpec reads a site description: one recorder per line (or per
// comma-separated item), "[COUNT x] MODEL [FIRMWARE [VARIANT]]", e.g.
//
//	2 x iDS-9632NXI-I8/16S 4.1.20 custom
//	iDS-9632NXI-I8/S 4.1.20 standard
//
// Blank lines and lines starting with # are skipped. base fills what a line
// leaves out. Recorders are named nvr-1, nvr-2, ... in order.
func ParseSiteSpec(spec string, base Config) ([]SiteRecorder, error) {
	var out []SiteRecorder
	items := strings.FieldsFunc(spec, func(r rune) bool { return r == '\n' || r == ',' || r == ';' })
	for n, item := range items {
		item = strings.TrimSpace(item)
		if item == "" || strings.HasPrefix(item, "#") {
			continue
		}
		f := strings.Fields(item)
		count := 1
		if len(f) >= 2 && (f[1] == "x" || f[1] == "X") {
			c, err := strconv.Atoi(f[0])
			if err != nil || c < 1 || c > 1000 {
				return nil, fmt.Errorf("site item %d (%q): %q is not a count from 1 to 1000", n+1, item, f[0])
			}
			count, f = c, f[2:]
		}
		if len(f) == 0 || len(f) > 3 {
			return nil, fmt.Errorf("site item %d (%q): write [COUNT x] MODEL [FIRMWARE [VARIANT]]", n+1, item)
		}
		cfg := base
		cfg.Model = f[0]
		if len(f) > 1 {
			cfg.Firmware = f[1]
		}
		if len(f) > 2 {
			cfg.Variant = f[2]
		}
		if _, err := cfg.withDefaults(); err != nil {
			return nil, fmt.Errorf("site item %d (%q): %w", n+1, item, err)
		}
		for range count {
			if len(out) >= 1000 {
				return nil, errors.New("a site of more than 1000 recorders: split it")
			}
			out = append(out, SiteRecorder{Name: fmt.Sprintf("nvr-%d", len(out)+1), Config: cfg})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the site has no recorder: give at least one line MODEL [FIRMWARE [VARIANT]]")
	}
	return out, nil
}
