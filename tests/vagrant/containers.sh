#!/bin/bash
# Issue 14 with a real container engine, inside the Vagrant box (run by tests/vagrant/run.sh
# as `vagrant ssh -c 'sudo bash /vagrant/tests/vagrant/containers.sh'`, before
# test-installed.sh): Docker (docker.io from Debian, in the CI box) with an image made
# locally (there is no registry here): `docker import` of a tree of empty directories and
# merged-/usr links, run with the box's own /usr mounted read-only, so the box's unmodified
# curl and botocore run inside containers (their own network namespaces, veths and bridge,
# which is what this tests) without importing a Debian rootfs (that took ~4 min under TCG).
# Containers on the default bridge and on a compose-style user network read
# http://169.254.169.254/ with them; one container per network and phase runs every probe:
#   - hop limit 1 (the default): IMDSv1 works, the token PUT gets no reply (curl times out,
#     botocore falls back to v1 after its 1 s timeout, as on EC2);
#   - hop limit 2: both get their token;
#   - http-tokens = "required" at hop limit 1: botocore finds no credentials, as on EC2;
#   - Docker restarting (it rewrites its nat chains) leaves one copy of each of our rules,
#     the DNATs still ahead of Docker's jump;
#   - `fake-metadata status` shows the container path.
# The config is put back as it was at the end. Prints "N passed, N failed" last.
#
# Usage (root, in the box): bash containers.sh
set -uo pipefail

IMAGE=fake-metadata-ci/ctr:local
NET=fm-compose_default
CONF=/etc/fake-metadata/config.toml
IMDS=http://169.254.169.254
WORK=$(mktemp -d)
cp "$CONF" "$WORK/config.orig"
. "$(dirname "$0")/check.sh"

cleanup() {
    cat "$WORK/config.orig" > "$CONF"
    systemctl reload fake-metadata.service
    docker network rm "$NET" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

# docker run on NETWORK with the peers mounted; no AWS config in the container. The box's
# kernel has AppArmor but the box has no apparmor_parser (docker.io only recommends
# `apparmor`), so Docker could not load its profile: run unconfined (it changes no networking).
run() {
    local net=$1; shift
    docker run --rm --security-opt apparmor=unconfined --network "$net" \
        -v /usr:/usr:ro -v /vagrant/tests/peers:/peers:ro "$IMAGE" "$@"
}
# Every probe from one container on NETWORK, as KEY=VALUE lines: v1 (IMDSv1 instance id),
# put_rc (curl's exit status for the token PUT; 28 is its timeout), v2 (the instance id read
# with that token, when there was one), boto (botocore_container.py's JSON).
probe() {
    # One stream inside the container: Docker relays stdout and stderr apart, and curl's
    # error message once landed inside an `echo`'s line ("curlput_rc=28").
    run "$1" sh -c 'exec 2>&1
        echo "v1=$(curl -fsS --max-time 5 '"$IMDS"'/latest/meta-data/instance-id)"
        rc=0
        tok=$(curl -fsS --max-time 3 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" '"$IMDS"'/latest/api/token) || rc=$?
        echo "put_rc=$rc"
        [ "$rc" != 0 ] || echo "v2=$(curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $tok" '"$IMDS"'/latest/meta-data/instance-id)"
        echo "boto=$(python3 /peers/botocore_container.py)"'
}
# The value of KEY in probe output on stdin.
field() { sed -n "s/^$1=//p"; }
# The [imds] section of the config, then reload; waits until the daemon serves it.
set_imds() {
    { cat "$WORK/config.orig"; printf '\n[imds]\n%s\n' "$1"; } > "$CONF"
    fake-metadata check-config "$CONF" >/dev/null
    systemctl reload fake-metadata.service
    sleep 1
}
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1]))' "$1"; }

IID=$(curl -fsS --max-time 5 "$IMDS/latest/meta-data/instance-id")
echo "--- box instance id $IID; $(docker --version 2>&1)"

engine() {
    systemctl start docker.service
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null
}
check "docker.service running" engine
image() {
    local tree="$WORK/image"
    mkdir -p "$tree"/{usr,etc,tmp,proc,sys,dev,peers}
    for d in bin sbin lib lib64; do ln -s "usr/$d" "$tree/$d"; done
    chmod 1777 "$tree/tmp"
    docker image inspect "$IMAGE" >/dev/null 2>&1 || tar -C "$tree" -c . | docker import - "$IMAGE"
    run none sh -c 'command -v curl && python3 -c "import botocore"'
}
check "image from docker import (the box's /usr mounted: curl, botocore)" image
check "a compose-style user network ($NET, a br-* bridge)" docker network create "$NET"

ADDRS=(169.254.169.254 169.254.170.2 169.254.170.23)   # IMDS, the ECS agent, Pod Identity
rules() {
    local a
    # Per endpoint: a DNAT per container network (docker0, br-+, podman+, cni+), none from
    # any interface; one drop of the rest; one REDIRECT for the box's own programs.
    for a in "${ADDRS[@]}"; do
        eq "$(iptables -w -t nat -S PREROUTING | grep -F -- "-d $a/32" | grep -c 'fake-metadata -j DNAT')" 4
        eq "$(iptables -w -S INPUT | grep -F -- "-d $a/32" | grep -c 'fake-metadata -j DROP')" 1
        eq "$(iptables -w -t nat -S OUTPUT | grep -F -- "-d $a/32" | grep -c 'fake-metadata -j REDIRECT')" 1
    done
    eq "$(iptables -w -t nat -S PREROUTING | grep -c 'fake-metadata -j DNAT')" $((4 * ${#ADDRS[@]}))
    eq "$(iptables -w -t nat -S PREROUTING | grep 'fake-metadata -j DNAT' | grep -vc ' -i ')" 0
    # Ours match before Docker's `-m addrtype --dst-type LOCAL -j DOCKER`.
    local last_ours docker
    iptables -w -t nat -S PREROUTING
    last_ours=$(iptables -w -t nat -S PREROUTING | grep -n 'fake-metadata -j DNAT' | tail -1 | cut -d: -f1)
    docker=$(iptables -w -t nat -S PREROUTING | grep -n -m1 -e '-j DOCKER' | cut -d: -f1)
    [ -z "$docker" ] || [ "$last_ours" -lt "$docker" ] || { echo "Docker's jump (line $docker) comes before ours (last: $last_ours)"; return 1; }
}
check "rules, per endpoint (IMDS, ECS, Pod Identity): a DNAT per container network (before Docker's jump), one drop, one REDIRECT" rules
restart_docker() {
    systemctl restart docker.service
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    rules
}
check "systemctl restart docker: still one copy of each, DNATs first" restart_docker
status_shows() {
    fake-metadata status --config "$CONF" | tee /dev/stderr | grep -F "daemon answers containers at http://169.254.169.254:1338/: instance id $IID"
}
check "fake-metadata status shows the container path" status_shows

# ---------------------------------------------------------------- hop limit 1 (default)
for net in bridge "$NET"; do
    out=$(probe "$net" 2>&1); echo "--- [$net] hop 1:"; echo "$out"
    check "[$net] hop 1: curl IMDSv1 instance-id" eq "$(field v1 <<<"$out")" "$IID"
    check "[$net] hop 1: token PUT gets no reply (curl exit 28, timeout)" eq "$(field put_rc <<<"$out")" 28
    check "[$net] hop 1: botocore: no token (its 1 s timeout)" eq "$(field boto <<<"$out" | json token)" False
    check "[$net] hop 1: botocore: v1 fallback reads the instance id" eq "$(field boto <<<"$out" | json instance_id)" "$IID"
done

# ---------------------------------------------------------------- hop limit 2
set_imds 'http-put-response-hop-limit = 2'
for net in bridge "$NET"; do
    out=$(probe "$net" 2>&1); echo "--- [$net] hop 2:"; echo "$out"
    check "[$net] hop 2: curl token PUT + GET with it" eq "$(field v2 <<<"$out")" "$IID"
    check "[$net] hop 2: botocore gets its token" eq "$(field boto <<<"$out" | json token)" True
done

# ---------------------------------------------------------------- required, hop limit 1
set_imds 'http-tokens = "required"'
out=$(probe bridge 2>&1); echo "--- [bridge] required, hop 1:"; echo "$out"
boto=$(field boto <<<"$out")
check "[bridge] required, hop 1: curl's token PUT times out" eq "$(field put_rc <<<"$out")" 28
check "[bridge] required, hop 1: botocore gets no token and its v1 reads fail (401)" eq "$(json instance_id_error <<<"$boto")" _RetriesExceededError
check "[bridge] required, hop 1: botocore finds no credentials (as on EC2)" eq "$(json credentials <<<"$boto")" None
check "required, hop 1: the box itself still gets its token" sh -c "tok=\$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $IMDS/latest/api/token) && curl -fsS -H \"X-aws-ec2-metadata-token: \$tok\" $IMDS/latest/meta-data/instance-id | grep -qx '$IID'"

echo "containers.sh: $((SECONDS - START)) s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
