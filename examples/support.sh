#!/usr/bin/env bash
# The support workflow: a recorder did not update; find out why on its host,
# and hand support a bundle that carries no personal data.
# Here the agent was given a wrong password. Run: examples/support.sh
source "$(dirname "$0")/lib.sh"

# The site: a simulated recorder, a signed manifest, an agent that tried once.
start_nvrsim nvr --serial SUP0001 --password right-password
mkdir -p www keys
nvrsim mkimage --version 4.1.25 --build 200316 --variant custom -o www/digicap.dav > /dev/null
fwctl keygen --out keys/release > /dev/null
fwctl release --image www/digicap.dav --model iDS-9632NXI-I8/16S --version 4.1.25 --build 200316 \
  --variant custom --url "file://$PWD/www/digicap.dav" > release.json 2> /dev/null
fwctl manifest new --release release.json --serial 1 -o manifest.json > /dev/null
fwctl sign --key keys/release.key -o www/manifest.dsse.json manifest.json 2> /dev/null
umask 077 && echo wrong-password > nvr.password
agent_config "$nvr_url" nvr.password "file://$PWD/www/manifest.dsse.json" keys/release.pub > agent.yaml
printf 'state_dir: state\nlog: {dir: log}\n' >> agent.yaml
fwagent update --now --config agent.yaml > /dev/null || echo "the update failed (exit $?)"

# 1. What happened: the update in progress, the last result, the last cycle (here: badCredentials, with its advice), quarantines.
fwagent status --config agent.yaml
# 2. What would the agent do now, and every reason (changes nothing; exit 1: it cannot log in).
fwagent check --config agent.yaml || true
# 3. The log lines of the last day, readable; then the audit trail's hash chain.
fwagent logs --since 24h --config agent.yaml
fwagent audit verify --config agent.yaml
# 4. A bundle for support: secrets always removed, personal data too unless --include-personal.
fwagent support-bundle -o bundle.tar.gz --config agent.yaml
tar -tzf bundle.tar.gz
