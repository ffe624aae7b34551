#!/usr/bin/env bash
# The fleet server: a recorder's agent checks in with its own device key,
# waits for approval, is held by a pause, installs after the resume, and its
# signed reports feed the rollout statistics. Run: examples/fleet.sh
source "$(dirname "$0")/lib.sh"
start_nvrsim nvr1 --serial NVR0001 --password nvr-secret-1 --model DS-7608NI-K2 --firmware 4.1.20 --variant standard

# A signed release, as in the integrator's workflow (one key: this model is
# not the protected iDS-9632NXI-I8/16S, which needs a second proof).
fwctl keygen --out release
mkdir -p www
nvrsim mkimage --model DS-7608NI-K2 --version 4.2.0 --build 240101 --variant standard -o www/digicap.dav
fwctl release --image www/digicap.dav --model DS-7608NI-K2 --version 4.2.0 --build 240101 \
  --variant standard --url "file://$PWD/www/digicap.dav" > release.json
release=DS-7608NI-K2-4.2.0
fwctl manifest new --release release.json --serial 1 --expires-in 720h -o manifest.json
fwctl sign --key release.key -o www/manifest.dsse.json manifest.json

# 1. The fleet server: SQLite by default, loopback, the admin token in a file.
umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > admin.token
start fleet fwctl fleet serve --listen 127.0.0.1:0 --admin-token-file admin.token \
  --max-failure-rate 20% --min-installs 5
wait_for fleet.out 'fleet server at'
fleet_url=$(sed -n 's/^fleet server at //p' fleet.out)
admin=(--server "$fleet_url" --admin-token-file admin.token)

# 2. The agent names the server in fleet.url; its key is made on first start.
echo nvr-secret-1 > nvr1.password
agent_config "$nvr1_url" nvr1.password "file://$PWD/www/manifest.dsse.json" release.pub > nvr1.yaml
cat >> nvr1.yaml <<YAML
state_dir: state-1
log: {dir: log-1}
fleet: {url: $fleet_url}
YAML

# 3. Stop the release before anyone starts it; the agent checks in and is held (exit 3).
fwctl fleet pause --release "$release" --cause "waiting for the site survey" "${admin[@]}"
fwagent update --now --config nvr1.yaml || [ $? -eq 3 ]

# 4. The recorder's key waits for approval; approve it by serial.
fwctl fleet devices --state pending_enrolment "${admin[@]}"
fwctl fleet approve NVR0001 "${admin[@]}"

# 5. Resume: the agent installs, and its signed reports reach the server.
fwctl fleet resume --release "$release" --cause "survey done" "${admin[@]}"
fwagent update --now --config nvr1.yaml
fwctl fleet devices "${admin[@]}"
fwctl rollout status --release "$release" --devices "${admin[@]}" www/manifest.dsse.json
