package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/spf13/cobra"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/internal/cli"
	"github.com/fwagent/fwagent/reports"
)

// adminFlags are the flags of every command that talks to the admin API.
type adminFlags struct {
	server, tokenFile string
}

func (f *adminFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.server, "server", "http://"+DefaultFleetListen, "URL of the fleet server")
	c.Flags().StringVar(&f.tokenFile, "admin-token-file", "", "file holding the server's admin token (required)")
}

// adminClient calls the admin API.
type adminClient struct {
	base, token, actor string
	hc                 *retryablehttp.Client
}

func (f *adminFlags) client(cmd *cobra.Command) (*adminClient, error) {
	if f.tokenFile == "" {
		return nil, cli.Usage(errors.New("--admin-token-file FILE is required (the fleet server's --admin-token-file)"))
	}
	tok, err := readToken(cmd, f.tokenFile)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(f.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, cli.Usage(fmt.Errorf("--server %q: want http(s)://HOST:PORT", f.server))
	}
	hc := retryablehttp.NewClient()
	hc.RetryMax = 2
	hc.RetryWaitMin, hc.RetryWaitMax = 500*time.Millisecond, 5*time.Second
	hc.HTTPClient.Timeout = 60 * time.Second
	hc.Logger = nil
	hc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	who := "fwctl"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		who += "@" + h
	}
	return &adminClient{base: strings.TrimRight(f.server, "/"), token: tok, actor: who, hc: hc}, nil
}

// do sends a request and decodes a 2xx JSON answer into out; a non-2xx
// answer becomes an error with the server's reason.
func (c *adminClient) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = io.ReadAll(body); err != nil {
			return cli.Failure(err)
		}
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, raw)
	if err != nil {
		return cli.Failure(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set(server.ActorHeader, c.actor)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return cli.Failure(fmt.Errorf("reach the fleet server: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		return cli.Failure(fmt.Errorf("the fleet server answered %d: %s", resp.StatusCode, e.Error))
	}
	if out == nil {
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return cli.Failure(fmt.Errorf("the fleet server's answer is not valid JSON: %w", err))
	}
	return nil
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func newFleetDevicesCmd() *cobra.Command {
	var (
		f                     adminFlags
		state, model, release string
		asJSON                bool
	)
	c := &cobra.Command{
		Use:   "devices [--state S] [--model M] [--release ID] [--json] --admin-token-file F [--server URL]",
		Short: "List the fleet's devices: serial, name, model, firmware, state, last seen",
		Long: `List devices with their state: up_to_date, updating, failed, pending_image,
stale (no check-in for 3 intervals), never_seen (approved or imported, never
checked in) or pending_enrolment (its key waits for fwctl fleet approve).
--release matches the release a device works on or last finished.`,
		Example: "  fwctl fleet devices --state failed --admin-token-file admin.token",
		Args:    cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if state != "" {
				if _, err := fleet.ParseState(state); err != nil {
					return cli.Usage(fmt.Errorf("--state: %w", err))
				}
			}
			ac, err := f.client(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "model": model, "release": release} {
				if v != "" {
					q.Set(k, v)
				}
			}
			var devs []server.DeviceJSON
			if err := ac.do(cmd.Context(), "GET", "/v1/admin/devices?"+q.Encode(), nil, &devs); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(devs)
			}
			// tabwriter writes cell by cell: buffered, 10,000 devices are a
			// few writes instead of 60,000 (half a second of system time).
			bw := bufio.NewWriter(w)
			tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tNAME\tMODEL\tFIRMWARE\tSTATE\tLAST SEEN")
			for _, d := range devs {
				name := d.DeviceName
				if d.Site != "" {
					name = d.Site + "/" + name
				}
				seen := "never"
				if !d.LastSeen.IsZero() {
					seen = d.LastSeen.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", esc(d.Serial), esc(dash(name)), esc(dash(d.Model)), esc(dash(d.Firmware)), d.State, seen)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d device(s)\n", len(devs))
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&state, "state", "", "only devices in this state")
	c.Flags().StringVar(&model, "model", "", "only devices of this model")
	c.Flags().StringVar(&release, "release", "", "only devices working on or last finishing this release")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// esc keeps a device-supplied string from garbling the terminal.
func esc(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func newFleetApproveCmd() *cobra.Command {
	var (
		f    adminFlags
		file string
	)
	c := &cobra.Command{
		Use:   "approve SERIAL... | --file FILE",
		Short: "Approve devices: accept their pending key, or let the first key of a new serial enrol",
		Long: `Approve the serials given (or listed in --file, one a line, # comments).
A serial whose key waits (pending_enrolment) is accepted; an unknown serial
is registered (never_seen) and the first key that checks in for it is
accepted. An enrolled serial keeps its key.`,
		Example: "  fwctl fleet approve --admin-token-file admin.token DS-7608NI-1 DS-7608NI-2\n  fwctl fleet approve --admin-token-file admin.token --file site-a-serials.txt",
		RunE: func(cmd *cobra.Command, args []string) error {
			serials := args
			if file != "" {
				more, err := readSerials(file)
				if err != nil {
					return err
				}
				serials = append(serials, more...)
			}
			if len(serials) == 0 {
				return cli.Usage(errors.New("give the serials to approve, or --file FILE"))
			}
			ac, err := f.client(cmd)
			if err != nil {
				return err
			}
			var res server.ApproveResult
			if err := ac.do(cmd.Context(), "POST", "/v1/admin/approve", jsonBody(server.ApproveRequest{Serials: serials}), &res); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "approved %d pending key(s), registered %d new serial(s), %d already enrolled\n", len(res.Approved), len(res.Registered), len(res.Already))
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&file, "file", "", "file of serials, one a line")
	return c
}

func newFleetForgetCmd() *cobra.Command {
	var f adminFlags
	c := &cobra.Command{
		Use:   "forget SERIAL... --admin-token-file F [--server URL]",
		Short: "Unbind a device's key (a recorder replaced or reinstalled): its next key enrols",
		Long: `Unbind the key of each serial: the next key that checks in for it is
enrolled, as for a serial approved before its first check-in. Use it when a
recorder's agent lost its state directory (and so its key) and its messages
are refused as forgeries. The device's history and reports stay.`,
		Example: "  fwctl fleet forget NVR-0001 --admin-token-file admin.token",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cli.Usage(errors.New("give the serials whose keys to forget"))
			}
			ac, err := f.client(cmd)
			if err != nil {
				return err
			}
			var res server.ForgetResult
			if err := ac.do(cmd.Context(), "POST", "/v1/admin/forget", jsonBody(server.ApproveRequest{Serials: args}), &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "forgot the key of %d device(s); %d unknown serial(s)\n", len(res.Forgotten), len(res.Unknown))
			if len(res.Unknown) > 0 {
				return cli.Failure(fmt.Errorf("unknown serial(s): %s", strings.Join(res.Unknown, ", ")))
			}
			return nil
		},
	}
	f.register(c)
	return c
}

func newFleetPauseCmd(pause bool) *cobra.Command {
	var (
		f              adminFlags
		release, cause string
	)
	name, short := "pause", "Hold a release: agents start no new install of it from their next check-in"
	if !pause {
		name, short = "resume", "Lift a hold on a release (a manual pause or an auto-pause)"
	}
	c := &cobra.Command{
		Use:   name + " --release ID [--cause TEXT] --admin-token-file F [--server URL]",
		Short: short,
		Long: short + `. The pause log keeps who (the token holder, user@host) and why.
A hold only stops: an agent honours it before it starts a download and before
it uploads the image, and never interrupts a flash in progress. It cannot
start or change an install: that takes the signed manifest.`,
		Example: "  fwctl fleet " + name + " --release iDS-9632NXI-I8-16S-4.1.25 --cause \"site B reports badFlash\" --admin-token-file admin.token",
		Args:    cli.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if release == "" {
				return cli.Usage(errors.New("--release ID is required"))
			}
			ac, err := f.client(cmd)
			if err != nil {
				return err
			}
			var res struct {
				Changed bool `json:"changed"`
			}
			if err := ac.do(cmd.Context(), "POST", "/v1/admin/releases/"+url.PathEscape(release)+"/"+name, jsonBody(server.PauseRequest{Cause: cause}), &res); err != nil {
				return err
			}
			state := "paused: agents hold it from their next check-in"
			if !pause {
				state = "resumed"
			}
			if !res.Changed {
				state = "already " + strings.SplitN(state, ":", 2)[0]
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release %s %s\n", release, state)
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&release, "release", "", "id of the release")
	c.Flags().StringVar(&cause, "cause", "", "why, for the pause log and the agents' logs")
	return c
}

func newFleetImportCmd() *cobra.Command {
	var f adminFlags
	c := &cobra.Command{
		Use:   "import REPORTS.jsonl --admin-token-file F [--server URL]",
		Short: "Import the reports file the old fwctl reports serve wrote into the fleet server",
		Long: `Send an old reports file (JSON Lines from the old fwctl reports serve) to
the fleet server. Its reports were never signed: the server keeps them as the
administrator's evidence (key "import") and counts them in rollout
statistics; unknown serials are registered (never_seen) so their first key
enrols. Repeated report ids and bad lines are skipped and counted. A report
an earlier import stored (the same report id) is skipped and counted as
already imported: importing a file twice stores nothing twice.`,
		Example: "  fwctl fleet import reports.jsonl --admin-token-file admin.token",
		Args:    cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ac, err := f.client(cmd)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return cli.Failure(err)
			}
			var res server.ImportResult
			if err := ac.do(cmd.Context(), "POST", "/v1/admin/import", bytes.NewReader(data), &res); err != nil {
				return err
			}
			for _, b := range res.Bad {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %s\n", args[0], b)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d new report(s), %d already imported; registered %d device(s); %d repeated, %d bad line(s) skipped\n", res.Reports, res.Already, res.Devices, res.Duplicates, len(res.Bad))
			return nil
		},
	}
	f.register(c)
	return c
}

func newFleetRolloutCmd() *cobra.Command {
	var (
		f       adminFlags
		release string
	)
	c := &cobra.Command{
		Use:   "rollout --release ID --admin-token-file F [--server URL] ENVELOPE",
		Short: "Tell the fleet server a release's rollout stages (from the manifest) so it counts devices by stage",
		Long: `Read the release's rollout from ENVELOPE (no signature is checked: the
server only counts with it) and send it to the fleet server, which then
counts devices per stage for the web page, rollout status --server and the
auto-pause. Run it again after fwctl rollout set or advance.`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if release == "" {
				return cli.Usage(errors.New("--release ID is required"))
			}
			rel, err := envelopeRelease(args[0], release)
			if err != nil {
				return err
			}
			if rel.Rollout == nil {
				return cli.Failure(fmt.Errorf("release %s has no rollout in %s: give it stages with fwctl rollout set", release, args[0]))
			}
			ac, err := f.client(cmd)
			if err != nil {
				return err
			}
			if err := ac.do(cmd.Context(), "PUT", "/v1/admin/releases/"+url.PathEscape(release)+"/rollout", jsonBody(rel.Rollout), nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release %s: %d stage(s) sent to the fleet server\n", release, len(rel.Rollout.Stages))
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&release, "release", "", "id of the release")
	return c
}

// serverRecords reads a release's accepted reports from the fleet server
// (rollout status and advance with --server).
func serverRecords(cmd *cobra.Command, f *adminFlags, release string) ([]reports.Record, error) {
	ac, err := f.client(cmd)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := ac.do(cmd.Context(), "GET", "/v1/admin/releases/"+url.PathEscape(release)+"/reports", nil, &buf); err != nil {
		return nil, err
	}
	file, err := reports.ParseReports(&buf)
	if err != nil {
		return nil, cli.Failure(err)
	}
	return file.Records, nil
}
