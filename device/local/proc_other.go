//go:build !unix

package local

import "os/exec"

// setProcessGroup leaves cmd as it is: only the command itself is killed on
// a timeout.
func setProcessGroup(cmd *exec.Cmd) {}
