#!/usr/bin/env bash
# fwagent's benchmark suite: every figure the README reports, measured in one
# run on this machine, each with its ratio to a baseline or a target.
#
#   (a) download + verify of a 1 GiB image vs a plain HTTP download of the
#       same file from the same loopback server, in one Go process;
#   (a2) the same as users see it (bench/curl.sh): whole processes against
#       nginx and `curl -o`, paired and alternating (target <= 1.15x plain curl);
#   (b) peak memory (ru_maxrss) of a whole 1 GiB update by `fwagent update
#       --now` in a child process: download, verify, ISAPI upload to the NVR
#       simulator, reboot, confirm (target < 64 MB);
#   (c) the cost of a poll that finds the manifest unchanged (one 304);
#   (d) the CPU time of `fwagent run` idle between polls (target < 50 ms/min).
#
# Usage: bench/run.sh [-size BYTES] [-runs N] [-idle DURATION] [-dir DIR]
#   -size  image size (default 1073741824); -runs  download rounds (default 5);
#   -idle  idle measurement (default 60s; e.g. 10s, the figure is scaled to
#          a minute); -dir  work directory (needs about 3x the image size).
# The machine's load is printed before and after: other work on the machine
# slows (a) and (b) down; compare the ratios, which are measured side by side.
set -euo pipefail
cd "$(dirname "$0")/.."

size=1073741824 runs=5 idle=60s dir=""
while [ $# -gt 0 ]; do
	case "$1" in
	-size) size="$2"; shift 2 ;;
	-runs) runs="$2"; shift 2 ;;
	-idle) idle="$2"; shift 2 ;;
	-dir) dir="$2"; shift 2 ;;
	*) echo "bench/run.sh: unknown flag $1 (use -size, -runs, -idle, -dir)" >&2; exit 2 ;;
	esac
done
dirflag=()
if [ -n "$dir" ]; then dirflag=(-dir "$dir"); fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

echo
echo "=== (a) download + verify vs plain HTTP download ($runs rounds)"
go build -o "$tmp/download" ./bench/download
"$tmp/download" -size "$size" -runs "$runs" "${dirflag[@]}"

echo
echo "=== (a2) download + verify vs curl from nginx, whole processes ($runs rounds)"
bench/curl.sh -size "$size" -runs "$runs" "${dirflag[@]}"

echo
echo "=== (b) whole update, (c) unchanged-manifest poll, (d) idle daemon"
go build -o "$tmp/fwagent" ./cmd/fwagent
go build -o "$tmp/agent" ./bench/agent
"$tmp/agent" -fwagent "$tmp/fwagent" -size "$size" -idle "$idle" "${dirflag[@]}"
