#!/usr/bin/env bash
# Download-and-verify measured the way users see it: whole processes, against
# nginx and curl, on the same 1 GiB digicap image, paired and alternating.
#
# Each round runs, in an order that rotates every round:
#   curl      curl -o FILE                     (the issue's reference: plain curl)
#   curl+sha  curl -o FILE && sha256sum FILE   (what a careful user does by hand)
#   curl+sync curl -o FILE && sync FILE        (plain curl made durable: apples to apples)
#   disk      dd conv=fsync of the served image from the page cache to FILE:
#             no network, no hashing; the floor of any download that ends
#             with the image on the disk
#   fwagent   bench/download -get: the agent's Downloader, hashing and checking
#             the digicap while writing, file and folder fsynced before it counts
# and prints, per round, the wall time of each and fwagent's ratio to each;
# then the median, min and max of the ratios and each command's median user
# and system CPU (from /usr/bin/time, children included).
#
# Usage: bench/curl.sh [-size BYTES] [-runs N] [-dir DIR] [-fwagent BIN] [-before BIN]
#   -size    image size (default 1073741824)   -runs  rounds (default 7)
#   -dir     work directory (default a new one under /var/tmp: a disk, not tmpfs)
#   -fwagent a prebuilt `bench/download` binary (default: built from this tree)
#   -before  another build of `bench/download` (e.g. of an older commit), run
#            as a fifth kind "before" in the same rounds, to measure a change
# Needs nginx (installed with apt-get when missing and run as root), curl and
# GNU time. The machine's load average is printed before and after every
# round: on a shared machine compare the paired ratios, not the times.
set -euo pipefail
cd "$(dirname "$0")/.."

size=1073741824 runs=7 dir="" bin="" before=""
while [ $# -gt 0 ]; do
	case "$1" in
	-size) size="$2"; shift 2 ;;
	-runs) runs="$2"; shift 2 ;;
	-dir) dir="$2"; shift 2 ;;
	-fwagent) bin="$2"; shift 2 ;;
	-before) before="$2"; shift 2 ;;
	*) echo "bench/curl.sh: unknown flag $1 (use -size, -runs, -dir, -fwagent, -before)" >&2; exit 2 ;;
	esac
done

need() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
if ! need nginx && ! need /usr/sbin/nginx; then
	if [ "$(id -u)" = 0 ]; then
		echo "installing Debian's nginx..."
		DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >/dev/null
	else
		echo "bench/curl.sh: nginx is missing: apt-get install nginx (as root)" >&2; exit 1
	fi
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)
for t in curl sha256sum /usr/bin/time; do
	need "$t" || { echo "bench/curl.sh: $t is missing (apt-get install curl coreutils time)" >&2; exit 1; }
done

work="$(mktemp -d "${dir:-/var/tmp}/fwagent-curl-bench.XXXXXX")"
nginx_pid=""
cleanup() {
	if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$bin" ]; then
	go build -o "$work/download" ./bench/download
	bin="$work/download"
fi
go build -o "$work/nvrsim" ./cmd/nvrsim

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr), $(df -T "$work" | awk 'NR==2 {print $2}') at $work"
echo "versions: $("$nginx" -v 2>&1), $(curl --version | head -1 | cut -d' ' -f1-2), $(go version | cut -d' ' -f3)"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), load average $(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$work/www" "$work/nginx"
"$work/nvrsim" mkimage --size "$size" -o "$work/www/digicap.dav" >/dev/null
sum=$(sha256sum "$work/www/digicap.dav" | cut -d' ' -f1)

# nginx as a non-daemon child on a free loopback port, everything in $work.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18080)
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	types { application/octet-stream dav; }
	server {
		listen 127.0.0.1:$port;
		root $work/www;
	}
}
EOF
"$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
url="http://127.0.0.1:$port/digicap.dav"
for _ in $(seq 100); do curl -sfI "$url" >/dev/null 2>&1 && break; sleep 0.1; done # wait for nginx to listen
curl -sfI "$url" >/dev/null || { echo "bench/curl.sh: nginx did not start: $(cat "$work/nginx/error.log")" >&2; exit 1; }
# Warm the page cache with the served image (every run reads it from memory,
# the disk kind's dd too).
cat "$work/www/digicap.dav" >/dev/null

out="$work/out.dav"
# run NAME CMD...: one timed whole-process run; appends "name wall user sys" to $work/times.
run() {
	local name="$1"; shift
	rm -f "$out"
	sync # no dirty pages of the previous run
	/usr/bin/time -f "$name %e %U %S" -a -o "$work/times" "$@" >/dev/null
}
kinds=(curl curl+sha curl+sync disk fwagent)
if [ -n "$before" ]; then kinds+=(before); fi
for ((i = 1; i <= runs; i++)); do
	load=$(cut -d' ' -f1 /proc/loadavg)
	: >"$work/times"
	for ((k = 0; k < ${#kinds[@]}; k++)); do
		case "${kinds[$(((k + i) % ${#kinds[@]}))]}" in
		curl) run curl curl -sSf -o "$out" "$url" ;;
		curl+sha) run curl+sha sh -c 'curl -sSf -o "$1" "$2" && sha256sum "$1"' sh "$out" "$url" ;;
		curl+sync) run curl+sync sh -c 'curl -sSf -o "$1" "$2" && sync "$1"' sh "$out" "$url" ;;
		disk) run disk dd if="$work/www/digicap.dav" of="$out" bs=16M conv=fsync status=none ;;
		fwagent) run fwagent "$bin" -get "$url" -sha256 "$sum" -size "$size" -out "$out" ;;
		before) run before "$before" -get "$url" -sha256 "$sum" -size "$size" -out "$out" ;;
		esac
	done
	awk -v i="$i" -v load="$load" -v end="$(cut -d' ' -f1 /proc/loadavg)" '
		{ t[$1] = $2; s[$1] = $4; if ($1 != "fwagent") o[++n] = $1 }
		END {
			printf "round %d:", i
			printf " fwagent %.2fs (sys %.2fs)", t["fwagent"], s["fwagent"]
			for (j = 1; j <= n; j++) printf " | %s %.2fs (sys %.2fs) ratio %.3fx", o[j], t[o[j]], s[o[j]], t["fwagent"] / t[o[j]]
			printf " | load %s -> %s\n", load, end
		}' "$work/times"
	cat "$work/times" >>"$work/all"
done
rm -f "$out"

echo
echo "image: $size bytes, sha256 $sum; $runs rounds, order rotated each round; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v kinds="${kinds[*]}" '
	function sortn(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } }
	function med(a, n) { sortn(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	{ n[$1]++; T[$1, n[$1]] = $2; U[$1, n[$1]] = $3; S[$1, n[$1]] = $4 }
	END {
		nk = split(kinds, k, " ")
		for (j = 1; j <= nk; j++) {
			c = k[j]; delete a; delete b; delete d
			for (i = 1; i <= n[c]; i++) { a[i] = T[c, i]; b[i] = U[c, i]; d[i] = S[c, i] }
			printf "%-10s wall median %6.2fs   user median %5.2fs   sys median %5.2fs\n", c, med(a, n[c]), med(b, n[c]), med(d, n[c])
		}
		for (j = 1; j <= nk; j++) {
			c = k[j]; if (c == "fwagent") continue
			delete r
			for (i = 1; i <= n[c]; i++) r[i] = T["fwagent", i] / T[c, i]
			m = med(r, n[c])
			ref = c == "curl" ? "   <- the reference (issue 13: target <= 1.15x)" : c == "disk" ? "   <- the floor: the same bytes made durable on this disk" : ""
			printf "ratio fwagent/%-9s median %.3fx  min %.3fx  max %.3fx  (%d pairs)%s\n", c, m, r[1], r[n[c]], n[c], ref
		}
	}' "$work/all"
