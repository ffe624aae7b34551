#!/usr/bin/env bash
# Download benchmark: fwagent's image download (hashing + digicap check while
# writing) against a plain HTTP download of the same 1 GiB file from a loopback
# server, in the same run, and the cost of an unchanged-manifest poll (one 304).
# Usage: bench/download.sh [-size BYTES] [-runs N] [-dir DIR]
# Needs about 2x the image size free in DIR (default: the system temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
exec go run ./bench/download "$@"
