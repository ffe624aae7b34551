#!/bin/sh
# Uploads a 1 GiB test image through the ISAPI backend to the NVR simulator
# and prints the uploading process's peak memory (target: under 64 MiB).
# Extra flags go to the program: -size BYTES, -style put|post, -dir DIR.
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/upload" ./bench/upload
"$bin/upload" "$@"
