package reports

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// WriteTable prints the status table: a headline, one row per stage (the
// pilot row only when it has devices or is current), a total, the failure
// codes of each row that has failures, and the file's problems.
func (s *Summary) WriteTable(w io.Writer) error {
	ro := s.Rollout
	switch {
	case ro == nil:
		fmt.Fprintf(w, "release %s: no rollout given (pass the ENVELOPE for per-stage counts)\n", s.ReleaseID)
	case s.Current == PilotStage && len(ro.Stages) > 0:
		fmt.Fprintf(w, "release %s, rollout %s: before stage 1 (opens %s)%s\n", s.ReleaseID, ro.ID, stamp(ro.Stages[0].At), pausedNote(ro.Paused))
	case s.Current == PilotStage:
		fmt.Fprintf(w, "release %s, rollout %s: no stages, only include and groups%s\n", s.ReleaseID, ro.ID, pausedNote(ro.Paused))
	default:
		st := ro.Stages[s.Current]
		fmt.Fprintf(w, "release %s, rollout %s: stage %d of %d (%g%%) since %s%s\n", s.ReleaseID, ro.ID, s.Current+1, len(ro.Stages), st.Percent, stamp(st.At), pausedNote(ro.Paused))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "STAGE\tPERCENT\tOPENS\tDEVICES\tDOWNLOADING\tINSTALLING\tCONFIRMED\tFAILED\tREFUSED\tFAILURE RATE\t")
	row := func(name, pct, opens string, c Counts) {
		rate, ok := c.FailureRate()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", name, pct, opens, c.Devices, c.Downloading, c.Installing, c.Confirmed, c.Failed, c.Refused, FormatRate(rate, ok))
	}
	for _, st := range s.Stages {
		if st.Index == PilotStage {
			if st.Devices > 0 || st.Current {
				row(mark("pilot", st.Current), "-", "-", st.Counts)
			}
			continue
		}
		opens := stamp(st.Stage.At)
		if st.Stage.At.After(s.Now) {
			opens += " (future)"
		}
		row(mark(fmt.Sprint(st.Index+1), st.Current), fmt.Sprintf("%g%%", st.Stage.Percent), opens, st.Counts)
	}
	row("total", "", "", s.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Stages) > 0 {
		fmt.Fprintln(w, "* current stage; failure rate = failed / (confirmed + failed)")
	} else {
		fmt.Fprintln(w, "failure rate = failed / (confirmed + failed)")
	}
	for _, st := range s.Stages {
		if st.Failed > 0 {
			fmt.Fprintf(w, "failures in %s: %s\n", s.StageName(st.Index), FormatCodes(st.FailureCodes))
		}
	}
	if len(s.Stages) == 0 && s.Total.Failed > 0 {
		fmt.Fprintf(w, "failures: %s\n", FormatCodes(s.Total.FailureCodes))
	}
	return nil
}

// WriteDevices prints one line per device: serial, state, stage, bucket,
// last step, codes and message of its latest report. A device that failed
// and has since started again shows as "failed, retrying" (or "failed,
// then refused") with the codes of its failure. Text from reports is
// printed with control characters escaped (see Printable).
func (s *Summary) WriteDevices(w io.Writer) error {
	devs := append([]DeviceStatus(nil), s.Devices...)
	sort.SliceStable(devs, func(i, j int) bool { return devs[i].Serial < devs[j].Serial })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tSTATE\tSTAGE\tBUCKET\tSTEP\tLAST REPORT\tCODES\tMESSAGE")
	for _, d := range devs {
		stage := "-"
		if s.Rollout != nil {
			stage = "pilot"
			if d.Stage != PilotStage {
				stage = fmt.Sprint(d.Stage + 1)
			}
		}
		bucket := "-"
		if d.Bucket >= 0 {
			bucket = fmt.Sprint(d.Bucket)
		}
		state, codeList := string(d.State), d.Codes
		if d.State == StateFailed {
			codeList = d.FailureCodes
			switch d.Latest {
			case StateFailed:
			case StateRefused:
				state = "failed, then refused"
			default:
				state = "failed, retrying"
			}
		}
		codes := "-"
		if len(codeList) > 0 {
			codes = fmt.Sprint(codeList)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", Printable(d.Serial), state, stage, bucket, Printable(d.Step), stamp(d.LastSeen), Printable(codes), Printable(d.Message))
	}
	return tw.Flush()
}

// Printable returns s with every control or non-printable character,
// invalid UTF-8 byte and backslash written as a Go escape (\n, \t, \x1b,
// \u2028, \xff, \\), like strconv.Quote without the quotes: a report's
// message can then neither move the terminal's cursor, change its colours
// nor break the table's columns and lines. Reports keep such characters
// (they are not refused); only their printing escapes them.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r) // like '\n' or '\u2028'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

func mark(name string, current bool) string {
	if current {
		return "*" + name
	}
	return name
}

func pausedNote(paused bool) string {
	if paused {
		return ", PAUSED: no new install starts"
	}
	return ""
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
