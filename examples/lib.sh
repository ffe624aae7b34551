# Helpers the example scripts share; sourced, never run on its own.
# Everything happens in a fresh temporary folder, on loopback ports the
# kernel picks, and is removed again when the script exits (even on error).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/fwagent-example.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The three binaries: built from this checkout into the temporary folder, or
# taken from FWAGENT_BIN (a folder holding fwagent, fwctl and nvrsim).
bin=${FWAGENT_BIN:-$work/bin}
if [ -z "${FWAGENT_BIN:-}" ]; then
  (cd "$repo" && go build -o "$bin/" ./cmd/fwagent ./cmd/fwctl ./cmd/nvrsim)
fi
export PATH="$bin:$PATH"
cd "$work"

# wait_for FILE PATTERN: wait (at most 20 s) until FILE holds a line matching PATTERN.
wait_for() {
  for _ in $(seq 400); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

# start NAME COMMAND...: run COMMAND in the background (stopped on exit), its
# output in NAME.out.
start() {
  local name=$1; shift
  "$@" > "$name.out" 2>&1 &
  pids+=($!)
}

# start_nvrsim NAME FLAGS...: a simulated recorder on a free loopback port;
# prints nothing, and sets the variable NAME_url to its address.
start_nvrsim() {
  local name=$1; shift
  start "$name" nvrsim --listen 127.0.0.1:0 --flash-seconds 1 --reboot-seconds 1 "$@"
  wait_for "$name.out" ' at http'
  printf -v "${name}_url" '%s' "$(sed -n 's|.* at \(http[^ ]*\)$|\1|p' "$name.out")"
}

# agent_config NVR_URL PASSWORD_FILE MANIFEST_URL KEY... : the smallest config
# for a recorder, with the short device timeouts a simulator allows.
agent_config() {
  local url=$1 pw=$2 manifest=$3; shift 3
  cat <<YAML
terms_accepted: true              # you read the vendor's General Terms of Use
device:
  backend: isapi
  isapi:
    url: $url
    username: admin
    password_file: $pw
    poll_interval: 100ms          # the simulator is fast; keep the default (5s) for a real recorder
    down_grace: 5s
manifest:
  urls: [$manifest]
  keys: [$(IFS=,; echo "$*")]
YAML
}
