#!/usr/bin/env bash
# Quick start: a simulated recorder, a signed manifest and one update, all on
# this machine. Run from a checkout: examples/quickstart.sh
source "$(dirname "$0")/lib.sh"

# 1. A simulated iDS-9632NXI-I8/16S running custom firmware 4.1.20.
start_nvrsim nvr --serial QS0001 --password nvr-secret-1
umask 077 && echo nvr-secret-1 > nvr.password

# 2. A test image of the custom firmware 4.1.25, its SHA-256 (for a real image:
#    the digest the vendor publishes on the product page), and a signing key.
mkdir -p www keys
nvrsim mkimage --version 4.1.25 --build 200316 --variant custom -o www/digicap.dav
sha=$(sha256sum www/digicap.dav | cut -d' ' -f1)
fwctl keygen --out keys/release

# 3. Describe the release (checked against the expected digest), list it in a
#    manifest, sign it.
fwctl release --image www/digicap.dav --expect-sha256 "$sha" --model iDS-9632NXI-I8/16S --version 4.1.25 \
  --build 200316 --variant custom --url "file://$PWD/www/digicap.dav" > release.json
fwctl manifest new --release release.json --serial 1 --expires-in 720h -o manifest.json
fwctl sign --key keys/release.key -o www/manifest.dsse.json manifest.json

# 4. The agent's config: the recorder, where the manifest is, which key to
#    trust, and the digest pinned for the protected model (with one signing
#    key, the pin is the second proof that this is the custom firmware).
agent_config "$nvr_url" nvr.password "file://$PWD/www/manifest.dsse.json" keys/release.pub > agent.yaml
cat >> agent.yaml <<YAML
policy:
  pins: {iDS-9632NXI-I8/16S: [$sha]}
state_dir: state
log: {dir: log}
YAML

# 5. What would the agent do, and why? (exit 0: an allowed update is available)
fwagent check --config agent.yaml

# 6. Do it now, outside any maintenance window; then look at the journal.
fwagent update --now --config agent.yaml
fwagent status --config agent.yaml
