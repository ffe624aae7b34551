//go:build unix

package local

import (
	"os/exec"
	"syscall"
)

// setProcessGroup runs cmd in its own process group and makes a timeout
// kill the whole group, so an install script's children die with it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
