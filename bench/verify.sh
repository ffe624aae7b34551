#!/usr/bin/env bash
# Measures one-pass image verification (verify.ImageStream: size, SHA-256 and
# every digicap entry checksum) against raw crypto/sha256 on a 1 GiB image
# streamed in 1 MiB writes, and prints the ratio. Target: ratio >= 0.80.
#
# The two benchmarks run back to back ROUNDS times (default 5) from one test
# binary, so each round compares them under the same machine load. The script
# prints every round, the median of the per-round ratios and the ratio of the
# best speeds. Memory: the B/op column is per 1 GiB image and must stay flat.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/verify.test" ./verify
for ((i = 1; i <= rounds; i++)); do
	"$tmp/verify.test" -test.run '^$' -test.bench '^(BenchmarkImageStream|BenchmarkRawSHA256)$' \
		-test.benchtime 2x -test.benchmem | grep '^Benchmark' | tee -a "$tmp/out"
done
awk '
	function mbs(   i) { for (i = 1; i < NF; i++) if ($(i+1) == "MB/s") return $i }
	function bop(   i) { for (i = 1; i < NF; i++) if ($(i+1) == "B/op") return $i }
	/^BenchmarkImageStream/ { s = mbs(); mem = bop(); if (s > bs) bs = s }
	/^BenchmarkRawSHA256/   { r = mbs(); if (r > br) br = r; if (s > 0) ratio[n++] = s / r; s = 0 }
	END {
		if (n == 0) { print "bench/verify.sh: benchmarks did not run" > "/dev/stderr"; exit 1 }
		for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (ratio[j] < ratio[i]) { t = ratio[i]; ratio[i] = ratio[j]; ratio[j] = t }
		med = (n % 2) ? ratio[int(n / 2)] : (ratio[n / 2 - 1] + ratio[n / 2]) / 2
		printf "ImageStream best %.0f MB/s, raw SHA-256 best %.0f MB/s\n", bs, br
		printf "ratio: median of %d rounds %.2f, best speeds %.2f (target >= 0.80); %s B allocated per 1 GiB image\n", n, med, bs / br, mem
	}' "$tmp/out"
