#!/usr/bin/env bash
# The integrator's workflow: two signing keys, a release, a signed manifest,
# a staged rollout watched through the agents' signed reports on the fleet
# server, widened on evidence.
# Two simulated recorders stand in for the fleet. Run: examples/integrator.sh
source "$(dirname "$0")/lib.sh"
fleet=(NVR0001 NVR0002)
for i in 1 2; do start_nvrsim "nvr$i" --serial "${fleet[i-1]}" --password "nvr-secret-$i"; done

# 1. Keys, once: two signers held by two people; devices need both (threshold 2).
mkdir -p -m 0700 keys
fwctl keygen --out keys/release-1        # keep keys/*.key offline; ship keys/*.pub to devices
fwctl keygen --out keys/release-2

# 2. The release: the image (here a test image) described with its size and SHA-256.
mkdir -p www                              # stands for any static HTTP host, CDN or object store
nvrsim mkimage --version 4.1.25 --build 200316 --variant custom -o www/digicap.dav
vendor_sha256=$(sha256sum www/digicap.dav | cut -d' ' -f1)   # real image: the digest on the vendor's product page
fwctl release --image www/digicap.dav --expect-sha256 "$vendor_sha256" --model iDS-9632NXI-I8/16S \
  --version 4.1.25 --build 200316 --variant custom --url "file://$PWD/www/digicap.dav" > release.json
release=iDS-9632NXI-I8-16S-4.1.25        # the id fwctl release gave it (--id to choose another)

# 3. The manifest, signed by both; checked as a device checks it.
fwctl manifest new --release release.json --serial 1 --expires-in 720h -o manifest.json
fwctl sign --key keys/release-1.key -o manifest.dsse.json manifest.json
fwctl sign --key keys/release-2.key --pub keys/release-1.pub -o manifest.dsse.json manifest.dsse.json
trust=(--pub keys/release-1.pub --pub keys/release-2.pub --threshold 2)
sign=(--key keys/release-1.key --key keys/release-2.key "${trust[@]}")
fwctl verify "${trust[@]}" manifest.dsse.json
fwctl inspect manifest.dsse.json

# 4. Stages: the pilot group now, everyone else in 30 days unless advanced earlier.
stages="0%@$(date -u -d '-1 minute' +%FT%TZ),100%@$(date -u -d '+30 days' +%FT%TZ)"
fwctl rollout set --release "$release" --group pilot --stages "$stages" "${sign[@]}" manifest.dsse.json
printf '%s\n' "${fleet[@]}" > serials.txt     # the fleet's serial numbers, one a line
fwctl rollout preview --release "$release" --devices serials.txt manifest.dsse.json

# 5. Reports: the fleet server takes each agent's reports signed by its own device key.
umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > admin.token   # yours alone: agents never hold it
start fleet fwctl fleet serve --listen 127.0.0.1:0 --admin-token-file admin.token
wait_for fleet.out 'fleet server at'
fleet_url=$(sed -n 's/^fleet server at //p' fleet.out)
admin=(--server "$fleet_url" --admin-token-file admin.token)
fwctl fleet approve --file serials.txt "${admin[@]}"   # the first key that checks in for each serial enrols

# 6. Publish: copy the envelope (and the image) to the static host after every change.
cp manifest.dsse.json www/manifest.dsse.json

# The two agents (on a real site: /etc/fwagent/agent.yaml on each recorder's host).
for i in 1 2; do
  echo "nvr-secret-$i" > "nvr$i.password"
  url=nvr${i}_url
  agent_config "${!url}" "nvr$i.password" "file://$PWD/www/manifest.dsse.json" keys/release-1.pub keys/release-2.pub > "nvr$i.yaml"
  cat >> "nvr$i.yaml" <<YAML
  threshold: 2
state_dir: state-$i
log: {dir: log-$i}
fleet: {url: $fleet_url}
YAML
done
echo "groups: [pilot]" >> nvr1.yaml

# The agents' nightly cycle (here: now). The pilot installs; the other waits (exit 3).
fwagent update --now --config nvr1.yaml
fwagent update --now --config nvr2.yaml || [ $? -eq 3 ]

# 7. Watch the rollout, then widen it on evidence: at most 2% of finished devices failed.
fwctl rollout status --release "$release" "${admin[@]}" manifest.dsse.json
fwctl rollout advance --release "$release" "${admin[@]}" --max-failure-rate 2% "${sign[@]}" manifest.dsse.json
cp manifest.dsse.json www/manifest.dsse.json
fwagent update --now --config nvr2.yaml
fwctl rollout status --release "$release" "${admin[@]}" --devices manifest.dsse.json

# 8. Stop new installs at once if something looks wrong, and go on later.
fwctl rollout pause --release "$release" "${sign[@]}" manifest.dsse.json
fwctl rollout resume --release "$release" "${sign[@]}" manifest.dsse.json
cp manifest.dsse.json www/manifest.dsse.json
