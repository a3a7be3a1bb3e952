#!/bin/bash
# Issue 25 (views: a fleet in one box) with a real container engine, inside the Vagrant box
# (run by tests/vagrant/run.sh as root, after containers.sh, whose image it reuses, and
# before test-installed.sh): two Docker containers on a compose-style user network with fixed
# addresses, one of them covered by a [[view]] (by its address), reading
# http://169.254.169.254/ with the box's unmodified curl and botocore (Debian's, the box's
# /usr mounted read-only):
#   - the view's container sees the view's instance id, identity document and role (curl and
#     botocore, which gets an IMDSv2 token: hop limit 2), the other the box's, with the box's
#     credentials; the two keys differ;
#   - `fake-metadata ctl spot --view node-a`: a node-termination-handler-style loop polling
#     spot/instance-action in each container at once: node-a's drains, node-b's never sees
#     a notice (nor does the box);
#   - `ctl view list` names the view; the journal (`ctl requests --json`) carries it.
# The config is put back as it was at the end. Prints "N passed, N failed" last.
#
# Usage (root, in the box): bash views.sh
set -uo pipefail

IMAGE=fake-metadata-ci/ctr:local
NET=fm-fleet
SUBNET=172.30.25.0/24
A_IP=172.30.25.10 B_IP=172.30.25.11
A_ID=i-0aaaaaaaaaaaaaaaa
CONF=/etc/fake-metadata/config.toml
IMDS=http://169.254.169.254
WORK=$(mktemp -d /tmp/views.XXXXXX)
cp "$CONF" "$WORK/config.orig"
. "$(dirname "$0")/check.sh"

cleanup() {
    docker rm -f fm-node-a fm-node-b >/dev/null 2>&1
    docker network rm "$NET" >/dev/null 2>&1
    cat "$WORK/config.orig" > "$CONF"
    systemctl reload fake-metadata.service
    rm -rf "$WORK"
}
trap cleanup EXIT

# The value of KEY in KEY=VALUE lines on stdin.
field() { sed -n "s/^$1=//p"; }
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1]))' "$1"; }
fp() { printf '%s' "$1" | sha256sum | cut -c1-16; }

# What a box's program reads (IMDSv2, curl).
box_get() {
    local tok
    tok=$(curl -fsS --max-time 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$IMDS/latest/api/token")
    curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $tok" "$IMDS/latest/$1"
}
BOX_ID=$(box_get meta-data/instance-id)
BOX_ROLE=$(box_get meta-data/iam/security-credentials/)
echo "--- box: instance id $BOX_ID, role $BOX_ROLE"

ready() {
    systemctl start docker.service
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker image inspect "$IMAGE" >/dev/null
    [ -n "$BOX_ID" ] && [ -n "$BOX_ROLE" ]
}
check "Docker running, containers.sh's image there, the box's id and role read" ready

config() {
    {
        cat "$WORK/config.orig"
        cat <<EOF

[imds]
http-put-response-hop-limit = 2

[[view]]
name = "node-a"
sources = ["$A_IP"]

[view.instance]
instance-id = "$A_ID"
local-ipv4 = "$A_IP"
mac = "0e:00:00:00:00:0a"

[view.iam]
role = "node-a-role"
EOF
    } > "$CONF"
    fake-metadata check-config "$CONF"
    systemctl reload fake-metadata.service
    for _ in $(seq 20); do fake-metadata ctl view list | grep -q node-a && break; sleep 0.5; done
    fake-metadata ctl view list | tee /dev/stderr | grep -w node-a | grep -F "$A_IP" | grep -F "$A_ID" | grep -q node-a-role
}
check "config: [[view]] node-a (sources $A_IP, own instance id and role); reload; ctl view list names it" config

# Two containers of a compose project, each at a fixed address on its network.
fleet() {
    docker network create --subnet "$SUBNET" "$NET" >/dev/null
    local n ip
    for n in a b; do
        ip=$A_IP; [ "$n" = a ] || ip=$B_IP
        docker run -d --name "fm-node-$n" --network "$NET" --ip "$ip" \
            --security-opt apparmor=unconfined -e HOME=/tmp -v /usr:/usr:ro "$IMAGE" sleep 600 >/dev/null
    done
    docker exec fm-node-a ip -o -4 addr show dev eth0 | grep -F " $A_IP/"
}
check "network $NET ($SUBNET, a br-* bridge), fm-node-a at $A_IP, fm-node-b at $B_IP" fleet

# Every probe of one container, as KEY=VALUE lines: curl (IMDSv2) the instance id, the
# identity document's instanceId, the role; botocore (its IMDS fetcher, as the SDK's
# credential provider uses it) its token, the instance id, the role and its key.
PROBE='
    imds=http://169.254.169.254/latest
    tok=$(curl -fsS --max-time 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" $imds/api/token)
    get() { curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $tok" "$imds/$1"; }
    echo "id=$(get meta-data/instance-id)"
    echo "doc=$(get dynamic/instance-identity/document | tr -d "\n ")"
    echo "role=$(get meta-data/iam/security-credentials/)"
    echo "boto=$(python3 -c "
import json, botocore.utils as u
f = u.InstanceMetadataFetcher()
t = f._fetch_metadata_token()
c = f.retrieve_iam_role_credentials()
print(json.dumps({\"token\": t is not None,
    \"instance_id\": f._get_request(\"/latest/meta-data/instance-id\", None, t).text,
    \"role\": c.get(\"role_name\"), \"key\": c.get(\"access_key\")}))
" 2>&1 | tail -1)"'
docker exec fm-node-a sh -c "$PROBE" > "$WORK/a.out" 2>&1 &
docker exec fm-node-b sh -c "$PROBE" > "$WORK/b.out" 2>&1
wait
A=$(cat "$WORK/a.out") B=$(cat "$WORK/b.out")
# Keys are compared by fingerprint, never shown.
echo "--- [node-a]"; sed 's/"key": "[^"]*"/"key": …/' "$WORK/a.out"
echo "--- [node-b]"; sed 's/"key": "[^"]*"/"key": …/' "$WORK/b.out"
A_BOTO=$(field boto <<<"$A") B_BOTO=$(field boto <<<"$B")
sees() { # OUT BOTO ID ROLE
    eq "$(field id <<<"$1")" "$3"
    grep -F "\"instanceId\":\"$3\"" <<<"$(field doc <<<"$1")"
    eq "$(field role <<<"$1")" "$4"
    eq "$(json token <<<"$2")" True
    eq "$(json instance_id <<<"$2")" "$3"
    eq "$(json role <<<"$2")" "$4"
}
check "[node-a, in the view] curl and botocore: the view's instance id ($A_ID), identity document, role node-a-role" sees "$A" "$A_BOTO" "$A_ID" node-a-role
check "[node-b, no view] curl and botocore: the box's instance id ($BOX_ID), identity document, role $BOX_ROLE" sees "$B" "$B_BOTO" "$BOX_ID" "$BOX_ROLE"
keys() {
    local a b box
    a=$(fp "$(json key <<<"$A_BOTO")"); b=$(fp "$(json key <<<"$B_BOTO")")
    box=$(fp "$(box_get "meta-data/iam/security-credentials/$BOX_ROLE" | json AccessKeyId)")
    eq "$b" "$box"
    ne "$a" "$box"
}
check "botocore's keys: node-b has the box's, node-a its own" keys

# node-termination-handler's way: poll spot/instance-action until a notice comes, then drain.
NTH='
    for i in $(seq "$1"); do
        if a=$(curl -fsS --max-time 2 http://169.254.169.254/latest/meta-data/spot/instance-action 2>/dev/null); then
            echo "drain after $i polls: $a"; exit 0
        fi
        sleep 0.5
    done
    echo "no notice in $1 polls"; exit 1'
spot() {
    local rc_a=0 rc_b=0
    fake-metadata ctl spot --view node-a --action terminate
    # Both at once; node-b polls as long as node-a may need (10 s at most).
    docker exec fm-node-a sh -c "$NTH" nth 20 > "$WORK/nth-a.out" 2>&1 & local pa=$!
    docker exec fm-node-b sh -c "$NTH" nth 8 > "$WORK/nth-b.out" 2>&1 || rc_b=$?
    wait "$pa" || rc_a=$?
    echo "node-a: $(cat "$WORK/nth-a.out")"; echo "node-b: $(cat "$WORK/nth-b.out")"
    eq "$rc_a" 0
    grep -F '"action":"terminate"' "$WORK/nth-a.out" || grep -F '"action": "terminate"' "$WORK/nth-a.out"
    eq "$rc_b" 1
    eq "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$IMDS/latest/meta-data/spot/instance-action")" 404
}
check "ctl spot --view node-a: node-a's polling loop drains, node-b's sees no notice (404 throughout), nor the box" spot

journal() {
    fake-metadata ctl requests --json > "$WORK/journal.jsonl"
    python3 - "$WORK/journal.jsonl" "$A_IP" "$B_IP" <<'PY'
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1])]
a, b = sys.argv[2], sys.argv[3]
bad = [e for e in entries if e.get("source") == a and e.get("view") != "node-a"]
bad += [e for e in entries if e.get("source") != a and "view" in e]
n = sum(1 for e in entries if e.get("source") == a)
print(f"{len(entries)} entries, {n} from node-a ({a})")
for e in bad:
    print("wrong view:", json.dumps(e))
sys.exit(1 if bad or n == 0 or not any(e.get("source") == b for e in entries) else 0)
PY
}
check "journal: node-a's requests carry \"view\": \"node-a\", node-b's and the box's none" journal

echo "views.sh: $((SECONDS - START)) s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
