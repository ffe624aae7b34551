package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is one maintenance window: a start and end time of day on a set of
// week days, in the local time of the times it is asked about. A window whose
// end is not after its start crosses midnight: "Sat 23:00-01:00" runs from
// Saturday 23:00 to Sunday 01:00. The days are the days the window starts.
type Window struct {
	Days  [7]bool // indexed by time.Weekday: the window starts on these days
	Start int     // minutes after midnight, 0..1439
	End   int     // minutes after midnight, 1..1440; End <= Start crosses midnight
	spec  string
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday,
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tues": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thur": time.Thursday, "thurs": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

// ParseWindow parses a window written as "DAYS HH:MM-HH:MM" where DAYS is
// "daily" or a comma-separated list of days and day ranges ("Sat",
// "Mon-Fri", "Fri-Mon", "Sat,Sun"). Without DAYS the window is daily.
// Times are 24-hour; the end may be 24:00.
func ParseWindow(s string) (Window, error) {
	w := Window{spec: strings.Join(strings.Fields(s), " ")}
	fail := func(why string) (Window, error) {
		return Window{}, fmt.Errorf(`%q is not a window: %s (use e.g. "Sat 02:00-04:00", "Mon-Fri 01:00-05:00", "daily 23:00-01:00")`, s, why)
	}
	fields := strings.Fields(s)
	var days, span string
	switch len(fields) {
	case 1:
		days, span = "daily", fields[0]
	case 2:
		days, span = fields[0], fields[1]
	default:
		return fail("expected days and a time range")
	}
	if strings.EqualFold(days, "daily") || days == "*" {
		for i := range w.Days {
			w.Days[i] = true
		}
	} else {
		for _, part := range strings.Split(days, ",") {
			from, to, isRange := strings.Cut(part, "-")
			a, ok := dayNames[strings.ToLower(from)]
			if !ok {
				return fail(fmt.Sprintf("unknown day %q", from))
			}
			b := a
			if isRange {
				if b, ok = dayNames[strings.ToLower(to)]; !ok {
					return fail(fmt.Sprintf("unknown day %q", to))
				}
			}
			for d := a; ; d = (d + 1) % 7 {
				w.Days[d] = true
				if d == b {
					break
				}
			}
		}
	}
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return fail("expected a time range HH:MM-HH:MM")
	}
	var err error
	if w.Start, err = clock(from, false); err != nil {
		return fail(err.Error())
	}
	if w.End, err = clock(to, true); err != nil {
		return fail(err.Error())
	}
	if w.Start == w.End {
		return fail("start and end are equal (for a whole day write 00:00-24:00)")
	}
	return w, nil
}

// clock parses "HH:MM" into minutes after midnight; 24:00 only as an end.
func clock(s string, end bool) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not a time HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && (mm != 0 || !end)) || strings.ContainsAny(s, "+-") {
		return 0, fmt.Errorf("%q is not a time between 00:00 and 24:00", s)
	}
	return hh*60 + mm, nil
}

// String returns the window as written (spaces normalised).
func (w Window) String() string { return w.spec }

// MarshalYAML writes the window back in its text form.
func (w Window) MarshalYAML() (any, error) { return w.spec, nil }

// occurrence returns the window starting on the calendar day y-m-d in loc.
func (w Window) occurrence(y int, m time.Month, d int, loc *time.Location) (start, end time.Time) {
	start = time.Date(y, m, d, w.Start/60, w.Start%60, 0, 0, loc)
	if w.End > w.Start {
		end = time.Date(y, m, d, w.End/60, w.End%60, 0, 0, loc)
	} else {
		end = time.Date(y, m, d+1, w.End/60, w.End%60, 0, 0, loc)
	}
	return start, end
}

// startsOn reports whether the window starts on calendar day y-m-d.
func (w Window) startsOn(y int, m time.Month, d int, loc *time.Location) bool {
	return w.Days[time.Date(y, m, d, 12, 0, 0, 0, loc).Weekday()]
}

// Contains reports whether t lies inside the window (start inclusive, end
// exclusive), in t's location.
func (w Window) Contains(t time.Time) bool {
	loc := t.Location()
	y, m, d := t.Date()
	for _, off := range []int{-1, 0} {
		if !w.startsOn(y, m, d+off, loc) {
			continue
		}
		s, e := w.occurrence(y, m, d+off, loc)
		if !t.Before(s) && t.Before(e) {
			return true
		}
	}
	return false
}

// Next returns the earliest time at or after t inside the window: t itself
// when the window contains t, else the start of the next occurrence. It
// returns the zero time only for a window with no days.
func (w Window) Next(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	loc := t.Location()
	y, m, d := t.Date()
	for off := 0; off <= 8; off++ {
		if !w.startsOn(y, m, d+off, loc) {
			continue
		}
		s, e := w.occurrence(y, m, d+off, loc)
		// A window inside a skipped hour (spring forward) collapses to an
		// empty span that Contains never matches: skip that occurrence.
		if !s.Before(t) && s.Before(e) {
			return s
		}
	}
	return time.Time{}
}
