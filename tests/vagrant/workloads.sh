#!/bin/bash
# Issue 23 inside the Vagrant box (run by tests/vagrant/run.sh as root, after containers.sh,
# whose image and running Docker it reuses): ECS tasks and EKS Pod Identity as unmodified AWS
# SDKs see them, with nothing but the environment `fake-metadata ctl task env` / `ctl pod env`
# print (no AWS config anywhere: the containers have none, the box's peers run under env -i).
# The peers, each an SDK's default credential chain printing one JSON object (the key's
# prefix and SHA-256 fingerprint, never the key):
#   - botocore from PyPI (/opt/fake-metadata-peers/python) and the box's Debian botocore 1.29
#     (ECS only: it predates Pod Identity), tests/peers/botocore_container_role.py; and the
#     box's Debian AWS CLI 2.9: `aws configure list` names the container provider;
#   - the AWS SDK for Rust (aws-config), /opt/fake-metadata-peers/aws_credential_chain;
#   - the AWS SDK for JavaScript v3 (npm, Node.js 18 from Debian), .../js/peer.js.
# tests/peers/build.sh makes them on the host; run.sh copies them to /opt/fake-metadata-peers.
# Checked: a [[task]] and a [[pod]] from the config (check-config, reload); every peer in a
# container and on the box gets the task role's / the pod role's credentials, the same key
# id as curl reads from the daemon, again (a new one) after `ctl credentials rotate`; the task
# metadata v4 from the container and from the box; a wrong pod token is refused; `ctl task
# add --from-docker` carries the container's real id; ctl task/pod add, list, remove; status;
# the request journal (issue 24) as a CI step reads it: `ctl requests --clear`, botocore on
# the box and in a named container, `ctl requests --json` (root by uid and name, the
# container by address and Docker name), `ctl assert` holding, and failing on a curl without
# a token (naming its user).
# The config is put back as it was at the end. Prints "N passed, N failed" last.
#
# Usage (root, in the box): bash workloads.sh
set -uo pipefail

IMAGE=fake-metadata-ci/ctr:local
CONF=/etc/fake-metadata/config.toml
PEERS=/opt/fake-metadata-peers
HERE=$(cd "$(dirname "$0")" && pwd)
IMDS=http://169.254.169.254
ECS=http://169.254.170.2
POD=http://169.254.170.23
WORK=$(mktemp -d /tmp/workloads.XXXXXX)
chmod 0755 "$WORK"
cp "$CONF" "$WORK/config.orig"
. "$(dirname "$0")/check.sh"

cleanup() {
    docker rm -f fm-api fm-journal >/dev/null 2>&1
    for t in api adhoc; do fake-metadata ctl task remove "$t" >/dev/null 2>&1; done
    fake-metadata ctl pod remove shop/adhoc >/dev/null 2>&1
    cat "$WORK/config.orig" > "$CONF"
    systemctl reload fake-metadata.service
    rm -rf "$WORK"
}
trap cleanup EXIT

# json KEY: KEY of the JSON object on stdin ("<not JSON>" when it is none).
json() {
    python3 -c '
import json, sys
try:
    print(json.load(sys.stdin).get(sys.argv[1]))
except (ValueError, AttributeError):
    print("<not JSON>")' "$1"
}
fp() { printf '%s' "$1" | sha256sum | cut -c1-16; }
# The value of KEY in KEY=VALUE lines on stdin.
field() { sed -n "s/^$1=//p"; }
# absent GREP_ARGS...: stdin has no match (a plain `! grep` would not fail a check under set -e).
absent() { if grep "$@"; then echo "unexpected: $*"; return 1; fi; }

# Every peer, as KEY=JSON lines: boto (PyPI botocore), rust, js; with DEBIAN_BOTO=1 also
# debian_boto (the box's botocore 1.29) and cli (`aws configure list`'s credentials row).
# Run in a container (the box's /usr and CA certificates mounted, the peers read-only) or on
# the box; either way with only the environment given.
PEERS_SH='
    ms() { date +%s%3N; }
    p() { t=$(ms); printf "%s=%s\n" "$1" "$(shift; "$@" 2>&1 | tail -1)"; echo "ms_$1=$(($(ms) - t))"; }
    p boto env PYTHONPATH=/opt/fake-metadata-peers/python python3 /peers/botocore_container_role.py
    p rust /opt/fake-metadata-peers/aws_credential_chain
    p js node /opt/fake-metadata-peers/js/peer.js
    if [ "${DEBIAN_BOTO:-0}" = 1 ]; then
        p debian_boto python3 /peers/botocore_container_role.py
        t=$(ms)
        printf "cli=%s\n" "$(aws configure list 2>&1 | grep -E "^ *access_key" | sed "s/\*\**[A-Za-z0-9]*/KEY/")"
        echo "ms_cli=$(($(ms) - t))"
    fi
    if [ -n "${ECS_CONTAINER_METADATA_URI_V4:-}" ]; then
        printf "meta=%s\n" "$(curl -fsS --max-time 5 "$ECS_CONTAINER_METADATA_URI_V4/task" 2>&1 | tr -d "\n")"
    fi'
in_container() { # ENV_FILE [docker run options...]: the peers in a new container
    local env_file=$1; shift
    docker run --rm --security-opt apparmor=unconfined --env-file "$env_file" "$@" \
        -e HOME=/tmp -v /usr:/usr:ro -v /etc/ssl/certs:/etc/ssl/certs:ro \
        -v "$HERE/../peers:/peers:ro" -v "$PEERS:$PEERS:ro" "$IMAGE" sh -c "$PEERS_SH"
}
on_box() { # ENV_FILE: the peers on the box itself, with that environment and nothing else
    local env_file=$1; shift
    mkdir -p "$WORK/home"
    # shellcheck disable=SC2046 # one KEY=VALUE word per line of the env file
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK/home" "$@" $(grep -E '^[A-Z_0-9]+=' "$env_file") \
        sh -c "${PEERS_SH//\/peers\//$HERE/../peers/}"
}
# peers_agree OUT WHO KEY_SHA256: every peer in OUT got credentials through the container
# provider, with the key whose fingerprint is KEY_SHA256 (one python3 for all: each start
# costs about a second under TCG).
peers_agree() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, re, sys
out, who, want = sys.argv[1], sys.argv[2].split(), sys.argv[3]
lines = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
provider = {"boto": "container-role", "debian_boto": "container-role",
            "rust": "EcsContainer", "js": "CREDENTIALS_HTTP"}
bad = 0
for p in who:
    print(f"{p} ({lines.get('ms_' + p, '?')} ms): {lines.get(p)}")
    try:
        j = json.loads(lines[p])
    except (KeyError, ValueError):
        print(f"  {p}: no JSON"); bad += 1; continue
    expect = {"error": None, "key_sha256": want, "key_prefix": "ASIA", "secret": True,
              "token": True, "provider": provider[p]}
    for k, v in expect.items():
        if j.get(k) != v:
            print(f"  {p}: {k} = {j.get(k)!r}, expected {v!r}"); bad += 1
    if not re.match(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ$", j.get("expiry") or ""):
        print(f"  {p}: expiry = {j.get('expiry')!r}"); bad += 1
sys.exit(1 if bad else 0)
PY
}

# ---------------------------------------------------------------- setup
prepare() {
    [ -x "$PEERS/aws_credential_chain" ]
    [ -f "$PEERS/js/peer.js" ]
    [ -d "$PEERS/python/botocore" ]
    node --version
    systemctl is-active docker.service || { systemctl start docker.service && sleep 2; }
    docker image inspect "$IMAGE" >/dev/null 2>&1 || {
        local tree="$WORK/image"
        mkdir -p "$tree"/{usr,etc,tmp,proc,sys,dev,peers}
        for d in bin sbin lib lib64; do ln -s "usr/$d" "$tree/$d"; done
        chmod 1777 "$tree/tmp"
        tar -C "$tree" -c . | docker import - "$IMAGE" >/dev/null
    }
}
check "peers in $PEERS, Node.js in the box, Docker and the image ready" prepare

config() {
    { cat "$WORK/config.orig"; printf '\n[[task]]\nname = "web"\nrole = "web-task-role"\n\n[[pod]]\nservice-account = "shop/cart"\nrole = "cart-pod-role"\n'; } > "$CONF"
    fake-metadata check-config "$CONF"
    systemctl reload fake-metadata.service
    sleep 1
    fake-metadata ctl task list | tee /dev/stderr | grep -w web
    fake-metadata ctl pod list | tee /dev/stderr | grep -F shop/cart
}
check "config: [[task]] web (web-task-role), [[pod]] shop/cart (cart-pod-role); check-config, reload, ctl list" config

status_shows() {
    local st
    st=$(fake-metadata status --config "$CONF")
    echo "$st"
    local a
    for a in 169.254.169.254 169.254.170.2 169.254.170.23; do
        grep -F "daemon answers through http://$a/" <<<"$st" >/dev/null
        grep -F "daemon answers containers at http://$a:" <<<"$st" >/dev/null
    done
}
check "fake-metadata status: IMDS, the ECS agent and Pod Identity answer, from the box and for containers" status_shows

# ---------------------------------------------------------------- the task
fake-metadata ctl task env web > "$WORK/web.env"
echo "--- ctl task env web: $(sed 's/=.*//' "$WORK/web.env" | tr '\n' ' ')"
task_env() {
    local rel v4
    rel=$(field AWS_CONTAINER_CREDENTIALS_RELATIVE_URI < "$WORK/web.env")
    v4=$(field ECS_CONTAINER_METADATA_URI_V4 < "$WORK/web.env")
    [[ $rel =~ ^/v2/credentials/[0-9a-f-]{36}$ ]] || { echo "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: not /v2/credentials/<uuid>"; return 1; }
    [[ $v4 =~ ^$ECS/v4/[0-9a-f-]+$ ]] || { echo "ECS_CONTAINER_METADATA_URI_V4 = $v4"; return 1; }
    [[ $(field ECS_CONTAINER_METADATA_URI < "$WORK/web.env") =~ ^$ECS/v3/[0-9a-f-]+$ ]]
    absent -E '^AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)=' < "$WORK/web.env"
}
check "ctl task env web: credentials URI (/v2/credentials/<uuid>), metadata v3 and v4 URIs, no keys" task_env
REL=$(field AWS_CONTAINER_CREDENTIALS_RELATIVE_URI < "$WORK/web.env")
V4=$(field ECS_CONTAINER_METADATA_URI_V4 < "$WORK/web.env")
# What the daemon serves the task (the box reads it as the agent's client would).
task_creds() { curl -fsS --max-time 5 "$ECS$REL"; }
TASK_JSON=$(task_creds 2>/dev/null)
TASK_KEY=$(fp "$(json AccessKeyId <<<"$TASK_JSON")")
task_curl() {
    [ -n "$TASK_JSON" ]
    [[ $(json RoleArn <<<"$TASK_JSON") =~ ^arn:aws[a-z-]*:iam::[0-9]{12}:role/web-task-role$ ]] || { echo "RoleArn: $(json RoleArn <<<"$TASK_JSON")"; return 1; }
    [[ $(json AccessKeyId <<<"$TASK_JSON") =~ ^ASIA ]]
    # The ECS agent's own header on the credentials.
    curl -fsS -o /dev/null -D - --max-time 5 "$ECS$REL" | grep -i '^content-type: application/json'
}
check "box: curl $ECS/v2/credentials/<id>: web-task-role's credentials (RoleArn, ASIA key)" task_curl

out=$(in_container "$WORK/web.env" -e DEBIAN_BOTO=1 2>&1); echo "--- [container] task web:"; echo "$out"
check "[container] task: botocore (PyPI, Debian), aws-config, SDK v3 get web-task-role's key" peers_agree "$out" "boto debian_boto rust js" "$TASK_KEY"
cli_row() { field cli <<<"$1" | tee /dev/stderr | grep -E '(^| )container-role( |$)'; }
check "[container] task: aws configure list (Debian's AWS CLI 2.9) names the container provider" cli_row "$out"

meta_task() { # curl ... /task: the task as the agent shows it
    local j=$1
    eq "$(json Family <<<"$j")" web
    [[ $(json TaskARN <<<"$j") =~ ^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:task/ ]] || { echo "TaskARN: $(json TaskARN <<<"$j")"; return 1; }
    eq "$(json LaunchType <<<"$j")" EC2
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); c=d["Containers"]; assert c and all("DockerId" in x and "Name" in x for x in c), c' "$j"
}
check "[container] curl \$ECS_CONTAINER_METADATA_URI_V4/task: Family web, TaskARN, LaunchType EC2, Containers" meta_task "$(field meta <<<"$out")"
stats() {
    eq "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$V4/stats")" 200
    eq "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$V4/task/stats")" 200
}
check "box: task metadata v4 /stats and /task/stats answer 200" stats

out=$(on_box "$WORK/web.env" 2>&1); echo "--- [box] task web:"; echo "$out"
check "box: task env only: the three peers get web-task-role's key" peers_agree "$out" "boto rust js" "$TASK_KEY"
check "box: task env only: curl \$ECS_CONTAINER_METADATA_URI_V4/task: Family web, TaskARN, LaunchType EC2, Containers" meta_task "$(field meta <<<"$out")"

wrong_id() { # an unknown credentials id: refused, nothing of the right one in the reply
    local code body
    [ -n "$TASK_JSON" ] || { echo "the right id got no credentials either"; return 1; }
    body=$(curl -s -w '\n%{http_code}' --max-time 5 "$ECS/v2/credentials/00000000-0000-4000-8000-000000000000")
    code=$(tail -1 <<<"$body"); echo "$body"
    [ "$code" -ge 400 ]
    absent -q AccessKeyId <<<"$body"
}
check "box: a wrong credentials id is refused (no credentials in the reply)" wrong_id

# ---------------------------------------------------------------- the pod
mkdir -p "$WORK/pod"
fake-metadata ctl pod env shop/cart --token-file "$WORK/pod/token" > "$WORK/cart.env"
echo "--- ctl pod env shop/cart: $(sed 's/=.*//' "$WORK/cart.env" | tr '\n' ' ')"
pod_env() {
    eq "$(field AWS_CONTAINER_CREDENTIALS_FULL_URI < "$WORK/cart.env")" "$POD/v1/credentials"
    eq "$(field AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE < "$WORK/cart.env")" "$WORK/pod/token"
    eq "$(stat -c %a "$WORK/pod/token")" 600
    [ -s "$WORK/pod/token" ]
}
check "ctl pod env shop/cart --token-file: FULL_URI $POD/v1/credentials, the token file (0600)" pod_env
pod_creds() { curl -fsS --max-time 5 -H "Authorization: $(cat "$WORK/pod/token")" "$POD/v1/credentials"; }
POD_JSON=$(pod_creds 2>/dev/null)
POD_KEY=$(fp "$(json AccessKeyId <<<"$POD_JSON")")
pod_curl() {
    [ -n "$POD_JSON" ]
    [[ $(json AccessKeyId <<<"$POD_JSON") =~ ^ASIA ]]
    [[ $(json AccountId <<<"$POD_JSON") =~ ^[0-9]{12}$ ]]
    ne "$POD_KEY" "$TASK_KEY"
}
check "box: curl $POD/v1/credentials with the token: the pod's credentials (AccountId; not the task's key)" pod_curl
refused() { # curl with a wrong or no Authorization: the agent's refusal
    local code body auth
    [ -n "$POD_JSON" ] || { echo "the right token got no credentials either"; return 1; }
    for auth in "Authorization: wrong-token" "X-Nothing: 1"; do
        body=$(curl -s -w '\n%{http_code}' --max-time 5 -H "$auth" "$POD/v1/credentials")
        code=$(tail -1 <<<"$body"); echo "$auth -> $body"
        [ "$code" -ge 400 ] && [ "$code" -lt 500 ]
        absent -q AccessKeyId <<<"$body"
    done
}
check "box: a wrong or missing pod token is refused (4xx, no credentials)" refused

tok=$(field AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE < "$WORK/cart.env")
out=$(in_container "$WORK/cart.env" -v "$tok:$tok:ro" 2>&1); echo "--- [container] pod shop/cart:"; echo "$out"
check "[container] pod: botocore (PyPI), aws-config, SDK v3 get cart-pod-role's key (token file mounted)" peers_agree "$out" "boto rust js" "$POD_KEY"
out=$(on_box "$WORK/cart.env" 2>&1); echo "--- [box] pod shop/cart:"; echo "$out"
check "box: pod env only: the three peers get cart-pod-role's key" peers_agree "$out" "boto rust js" "$POD_KEY"

# ---------------------------------------------------------------- rotation
check "ctl credentials rotate" fake-metadata ctl credentials rotate
sleep 1
TASK_KEY2=$(fp "$(task_creds 2>/dev/null | json AccessKeyId)")
POD_KEY2=$(fp "$(pod_creds 2>/dev/null | json AccessKeyId)")
rotated() { ne "$TASK_KEY2" "$TASK_KEY"; ne "$POD_KEY2" "$POD_KEY"; ne "$TASK_KEY2" "$POD_KEY2"; }
check "after rotate: the daemon serves the task and the pod new keys" rotated
out=$(in_container "$WORK/web.env" 2>&1)
check "[container] after rotate: the task's peers get its new key" peers_agree "$out" "boto rust js" "$TASK_KEY2"
out=$(on_box "$WORK/cart.env" 2>&1)
check "box: after rotate: the pod's peers get its new key" peers_agree "$out" "boto rust js" "$POD_KEY2"

# ---------------------------------------------------------------- ctl at run time
from_docker() { # a running container's real facts in the task metadata
    local id j
    docker rm -f fm-api >/dev/null 2>&1 || true
    id=$(docker run -d --name fm-api --security-opt apparmor=unconfined -v /usr:/usr:ro "$IMAGE" sleep 300)
    fake-metadata ctl task add api --role web-task-role --from-docker fm-api
    fake-metadata ctl task list | grep -w api
    fake-metadata ctl task env api > "$WORK/api.env"
    # shellcheck disable=SC2046 # -e KEY=VALUE pairs
    j=$(docker exec $(grep -E '^[A-Z_0-9]+=' "$WORK/api.env" | sed 's/^/-e /') fm-api \
        sh -c 'curl -fsS --max-time 5 "$ECS_CONTAINER_METADATA_URI_V4/task"')
    eq "$(json Family <<<"$j")" api
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); ids=[c.get("DockerId") for c in d["Containers"]]; assert sys.argv[2] in ids, ids' "$j" "$id"
    docker rm -f fm-api >/dev/null
}
check "ctl task add api --from-docker fm-api: its task metadata carries the container's DockerId" from_docker
adhoc() {
    local rel
    fake-metadata ctl task add adhoc --role web-task-role
    fake-metadata ctl task list | grep -w adhoc
    rel=$(fake-metadata ctl task env adhoc | field AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)
    curl -fsS --max-time 5 "$ECS$rel" | grep -q AccessKeyId
    fake-metadata ctl task remove adhoc
    fake-metadata ctl task list | absent -w adhoc
    eq "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$ECS$rel")" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$ECS/v2/credentials/00000000-0000-4000-8000-000000000000")"
    fake-metadata ctl task remove api
}
check "ctl task add|list|remove adhoc: served, then gone (refused like an unknown id)" adhoc
pod_adhoc() {
    fake-metadata ctl pod add shop/adhoc --role cart-pod-role
    fake-metadata ctl pod list | grep -F shop/adhoc
    fake-metadata ctl pod remove shop/adhoc
    fake-metadata ctl pod list | absent -F shop/adhoc
}
check "ctl pod add|list|remove shop/adhoc" pod_adhoc
bad_input() { # one clear line, exit 1, nothing changed
    local e rc args words
    for args in "task remove no-such-task" "task add web --role web-task-role" "pod add not-a-service-account --role r" "task add bad --role not/a-role"; do
        read -ra words <<<"$args"
        rc=0; e=$(fake-metadata ctl "${words[@]}" 2>&1) || rc=$?
        echo "ctl $args -> rc=$rc: $e"
        eq "$rc" 1
        eq "$(wc -l <<<"$e")" 1
    done
    fake-metadata ctl task list | grep -w web
}
check "ctl: unknown task, duplicate name, bad service account, bad role: one line, exit 1" bad_input

# ---------------------------------------------------------------- the request journal
# Issue 24 as a CI step uses it: `ctl requests --clear`, the workload, `ctl assert`. The
# workload, both at once (each botocore start costs seconds under TCG): botocore's default
# chain in a named container with the task's environment (the ECS agent's endpoint, through
# the container path) and on the box as root (the instance role, through IMDS with a token).
# `ctl requests --json` (as root, so it may ask Docker for names) shows root's requests by
# uid and name, the container's by its address and name; then a curl without a token by
# the vagrant user makes `ctl assert --no-v1` fail, naming that user and the path. The
# container is left to cleanup (one `docker rm` for all).
journal_workload() {
    local ip
    fake-metadata ctl requests --clear
    docker rm -f fm-journal >/dev/null 2>&1 || true
    docker run -d --name fm-journal --security-opt apparmor=unconfined --env-file "$WORK/web.env" \
        -e HOME=/tmp -v /usr:/usr:ro -v "$HERE/../peers:/peers:ro" "$IMAGE" \
        sh -c 'python3 /peers/botocore_container_role.py > /tmp/boto.json 2>&1; sleep 300' >/dev/null
    mkdir -p "$WORK/home"
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK/home" python3 "$HERE/../peers/botocore_container_role.py" > "$WORK/journal-box.json"
    for _ in $(seq 60); do docker exec fm-journal test -s /tmp/boto.json && break; sleep 0.5; done
    docker exec fm-journal cat /tmp/boto.json | tee /dev/stderr | grep -F '"provider": "container-role"'
    tee /dev/stderr < "$WORK/journal-box.json" | grep -F '"provider": "iam-role"'
    fake-metadata ctl requests --json > "$WORK/journal.jsonl"
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' fm-journal)
    python3 - "$WORK/journal.jsonl" "$ip" "${REL##*/}" <<'PY'
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1])]
ctr_ip, cred_id = sys.argv[2], sys.argv[3]
bad = []
def one(what, **want):
    if not any(all(e.get(k) == v for k, v in want.items()) for e in entries):
        bad.append(f"no entry {what}: {want}")
one("root's token PUT (v2, REDIRECT)", endpoint="imds", method="PUT", path="/latest/api/token",
    uid=0, user="root", imds_version=2, status=200, source="169.254.169.254")
one("root's credentials read (v2)", endpoint="imds", uid=0, user="root", imds_version=2, status=200,
    path="/latest/meta-data/iam/security-credentials/")
one("the container's task credentials (by address and name, no uid)", endpoint="ecs",
    path="/v2/credentials/<id>", status=200, source=ctr_ip, container="fm-journal", uid=None, user=None)
bad += [f"a v1 request: {e}" for e in entries if e.get("imds_version") == 1]
bad += [f"the credentials id shown: {e}" for e in entries if cred_id in json.dumps(e)]
for e in entries:
    print(json.dumps(e))
print(f"{len(entries)} entries; the container at {ctr_ip}")
for b in bad:
    print(b)
sys.exit(1 if bad or not ctr_ip else 0)
PY
}
check "journal: ctl requests --clear, botocore on the box (root, IMDSv2) and in container fm-journal (task env): ctl requests --json names root by uid and the container by address and name" journal_workload
journal_ci_step() {
    fake-metadata ctl assert --no-v1 &&
        fake-metadata ctl assert --path '/latest/meta-data/iam/security-credentials/*' --user root --min 1 --max 2
}
check "journal: as a CI step: ctl assert --no-v1 && ctl assert --path '/latest/meta-data/iam/security-credentials/*' --user root --max 2" journal_ci_step
journal_v1_offender() {
    local rc=0 said
    runuser -u vagrant -- curl -fsS --max-time 5 "$IMDS/latest/meta-data/instance-id"
    echo
    said=$(fake-metadata ctl assert --no-v1) || rc=$?
    echo "$said"
    eq "$rc" 1
    grep -F "user vagrant (uid $(id -u vagrant))" <<<"$said"
    grep -F "imds /latest/meta-data/instance-id (1)" <<<"$said"
    absent -F "user root" <<<"$said"
    fake-metadata ctl status | tee /dev/stderr | grep -F "user vagrant (uid $(id -u vagrant))"
}
check "journal: curl without a token as vagrant: ctl assert --no-v1 exits 1 naming vagrant's uid and the path; ctl status shows it" journal_v1_offender

echo "workloads.sh: $((SECONDS - START)) s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
