package reports

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// File is what ReadReports found in a reports file.
type File struct {
	// Records are the valid lines in file order, each report id once.
	Records []Record
	// Bad lists the lines that were skipped, with why.
	Bad []BadLine
	// Duplicates counts lines whose report id appeared earlier (delivery
	// is at least once: an agent resends a report whose answer it lost).
	Duplicates int
}

// BadLine is a skipped line of a reports file.
type BadLine struct {
	Line    int    // 1-based line number
	Problem string // why it was skipped
}

// String formats the line for a warning.
func (b BadLine) String() string { return fmt.Sprintf("line %d: %s", b.Line, b.Problem) }

// ReadReports reads a reports file. It never fails on a bad line: a line
// that is not a valid record (a line cut by a crash, a last line still
// being written, garbage) is skipped
// and listed in File.Bad; repeated report ids are dropped and counted.
func ReadReports(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open the reports file: %w", err)
	}
	defer f.Close()
	return ParseReports(f)
}

// ParseReports reads reports file content from r; see ReadReports.
func ParseReports(r io.Reader) (*File, error) {
	out := &File{}
	seen := map[string]bool{}
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		data, err := br.ReadBytes('\n')
		if len(data) > 0 {
			if data[len(data)-1] != '\n' {
				out.Bad = append(out.Bad, BadLine{line, "the last line is incomplete (being written, or cut by a crash): skipped"})
			} else if rec, perr := parseLine(data); perr != nil {
				if len(bytes.TrimSpace(data)) > 0 {
					out.Bad = append(out.Bad, BadLine{line, perr.Error()})
				}
			} else if seen[rec.Report.ID] {
				out.Duplicates++
			} else {
				seen[rec.Report.ID] = true
				out.Records = append(out.Records, rec)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read the reports file: %w", err)
		}
	}
}

// parseLine decodes and validates one line (one decoding pass: a server
// wrote the line, so only the report's fields need checking).
func parseLine(data []byte) (Record, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, fmt.Errorf("not a reports file line: %s", jsonProblem(err))
	}
	if rec.Received.IsZero() {
		return Record{}, errors.New(`not a reports file line: "received" is missing`)
	}
	if err := validate(&rec.Report); err != nil {
		return Record{}, err
	}
	return rec, nil
}
