#!/usr/bin/env bash
# The site gateway's figures: one fwagent serving N simulated recorders
# (image GETs and bytes fetched for any N, every recorder updated and
# confirmed with max_parallel 4, peak memory against the one-recorder agent,
# idle CPU per minute against N). Figures and ratios only, no timed asserts.
#
# Usage: bench/site.sh [-n 1,4,16,64] [-size BYTES] [-idle 20s]
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, $(uname -sr), $(go version | cut -d' ' -f3), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
go build -o "$tmp/fwagent" ./cmd/fwagent
go build -o "$tmp/site" ./bench/site
"$tmp/site" -fwagent "$tmp/fwagent" "$@"
