// Command gen writes docs/reference/codes.md from the reason registry:
// go generate ./reason (or go run ./reason/gen -o docs/reference/codes.md).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/renameio/v2"

	"github.com/fwagent/fwagent/reason"
)

func main() {
	out := flag.String("o", "", "write to this file instead of stdout")
	flag.Parse()
	doc := reason.Markdown()
	if *out == "" {
		fmt.Print(doc)
		return
	}
	if err := renameio.WriteFile(*out, []byte(doc), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
