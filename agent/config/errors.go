package config

import (
	"errors"
	"strconv"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every *Error: the configuration is
// unusable and the agent must not start.
var ErrInvalid = errors.New("invalid configuration")

// Error is one problem in the configuration, located by file, line and key.
// Parse and Load may return several joined with errors.Join; errors.As
// finds the first.
type Error struct {
	File string // file name as given to Load or Parse
	Line int    // 1-based line, 0 when unknown
	Key  string // dotted key path, e.g. "poll.interval" or "manifest.urls[1]"
	Msg  string // what is wrong and what to do
}

// Error formats the problem as "file:line: key: message".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("config")
	}
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true for every *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// maxErrors caps how many problems one Parse reports.
const maxErrors = 20

// problems collects errors for one file.
type problems struct {
	file  string
	lines map[string]int
	errs  []error
	// rename, when set, maps a key as the checks name it to the key as the
	// file writes it (device.isapi.url -> devices[1].isapi.url).
	rename func(key string) string
}

// add records a problem at an explicit line.
func (p *problems) add(line int, key, msg string) {
	if len(p.errs) >= maxErrors {
		return
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Key: key, Msg: msg})
}

// at records a problem at the line where key was written, if known.
func (p *problems) at(key, msg string) {
	if p.rename != nil {
		key = p.rename(key)
	}
	line := 0
	if p.lines != nil {
		line = p.lines[key]
		// A key missing from a devices: entry is placed at the nearest
		// part of the entry that was written.
		for k := key; line == 0 && p.rename != nil && strings.ContainsAny(k, "."); {
			k = k[:strings.LastIndex(k, ".")]
			line = p.lines[k]
		}
	}
	p.add(line, key, msg)
}

func (p *problems) err() error {
	switch len(p.errs) {
	case 0:
		return nil
	case 1:
		return p.errs[0]
	}
	return errors.Join(p.errs...)
}
