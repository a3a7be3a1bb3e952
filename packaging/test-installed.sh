#!/bin/bash
# Check an installed fake-metadata package from inside the machine it is installed on (a
# Vagrant box, a VM, a container with systemd), with the real clients and no endpoint
# override: everything goes to http://169.254.169.254/ through the package's interception.
#
# Usage (as root, inside the box):
#     sudo bash /vagrant/packaging/test-installed.sh [--no-purge]
# From the host:
#     vagrant ssh -c 'sudo bash /vagrant/packaging/test-installed.sh'
#
#   --no-purge   skip the last part, which runs `apt-get purge -y fake-metadata` and checks
#                that nothing is left (it is on by default: CI runs it in a throw-away VM).
#
# Checks that need a client that is not installed (aws, python3-boto3, cloud-init) or a
# feature that is not served (an IAM role) print "skip" with the reason. Every check prints
# ok/FAIL/skip; the last line is "N passed, N failed"; the exit status is 1 if any failed.
#
# The checks change the machine only for the time they run: /etc/fake-metadata/config.toml
# gets a test [user-data] (restored afterwards, with a reload), the log file is renamed once
# and joined again, and cloud-init runs with its own state directories under a temporary
# directory (never /var/lib/cloud), with no modules, no network and no hostname change,
# through a drop-in /etc/cloud/cloud.cfg.d/99-fake-metadata-test-installed.cfg that exists
# only while it runs.
set -uo pipefail

PURGE=1
for a in "$@"; do
    case $a in
        --no-purge) PURGE=0 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "test-installed.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "test-installed.sh: run as root (sudo)" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
# No AWS setting of the caller may steer the clients: no endpoint, no profile, no keys.
for v in $(env | sed -n 's/^\(AWS_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

IMDS=http://169.254.169.254
CONF=/etc/fake-metadata/config.toml
WORK=$(mktemp -d /tmp/fake-metadata-test.XXXXXX)
CONF_BACKUP=$WORK/config.toml.orig
CI_DROPIN=/etc/cloud/cloud.cfg.d/99-fake-metadata-test-installed.cfg
cp -p "$CONF" "$CONF_BACKUP" 2>/dev/null || true
cleanup() {
    rm -f "$CI_DROPIN"
    # Put the configuration back if a check left a test one in place.
    if [ -f "$CONF_BACKUP" ] && [ -d /etc/fake-metadata ] && ! cmp -s "$CONF_BACKUP" "$CONF"; then
        cp -p "$CONF_BACKUP" "$CONF" && systemctl reload fake-metadata.service 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

pass=0 fail=0 skip=0
FAILED=()
LAST=$WORK/last.out
# Each check runs in a subshell with errexit, its output kept and shown only on failure.
check() {
    local name=$1 rc; shift
    ( set -e; "$@" ) >"$LAST" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1)); printf 'ok    %s\n' "$name"
        sed -n 's/^INFO: /      /p' "$LAST"
    else
        fail=$((fail + 1)); FAILED+=("$name"); printf 'FAIL  %s\n' "$name"
        sed 's/^/      | /' "$LAST" | tail -20
    fi
}
skipped() { skip=$((skip + 1)); printf 'skip  %s: %s\n' "$1" "$2"; }
section() { printf -- '--- %s  [%ss]\n' "$*" "$SECONDS"; }
info() { echo "INFO: $*"; }
eq() { [ "$1" = "$2" ] || { echo "expected '$2', got '$1'"; return 1; }; }
get() { curl -fsS --noproxy '*' --max-time 5 "$IMDS/latest/$1"; }
# A clean environment for the AWS clients: empty HOME (no ~/.aws), no AWS_* variables.
aws_env() {
    mkdir -p "$WORK/home"
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK/home" LC_ALL=C.UTF-8 "$@"
}
main_pid() { systemctl show -p MainPID --value fake-metadata.service; }
wait_for() { # wait_for SECONDS CMD...: retry CMD every 0.2 s
    local n=$(( $1 * 5 )); shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    "$@"
}
reload() { systemctl reload fake-metadata.service; }
# Rewrite the config with TABLE replaced by the lines given on stdin (section-aware).
set_table() {
    local table=$1 body; body=$(cat)
    awk -v t="[$table]" '
        /^[[:space:]]*\[/ { h = $0; sub(/[[:space:]]*(#.*)?$/, "", h); sub(/^[[:space:]]*/, "", h); drop = (h == t) }
        !drop { print }' "$CONF_BACKUP" > "$WORK/config.new"
    printf '\n%s\n%s\n' "[$table]" "$body" >> "$WORK/config.new"
    cat "$WORK/config.new" > "$CONF"
}

section "package $(dpkg-query -W -f='${Version}' fake-metadata 2>/dev/null || echo '(not installed)') on $(. /etc/os-release; echo "$PRETTY_NAME"), $(systemd-detect-virt 2>/dev/null || echo unknown virt)"
check "package fake-metadata is installed" dpkg-query -W -f='${Status}\n' fake-metadata
check "fake-metadata.service active" eq "$(systemctl is-active fake-metadata.service)" active
check "fake-metadata-intercept.service active" eq "$(systemctl is-active fake-metadata-intercept.service)" active
not_root() {
    local pid user; pid=$(main_pid); [ "$pid" != 0 ]
    user=$(ps -o user= -p "$pid"); info "MainPID $pid runs as $user"
    [ -n "$user" ] && [ "$user" != root ]
}
check "MainPID is not root" not_root
# The container path ([intercept] containers, on by default): a DNAT per container network
# (docker0, br-+, podman+, cni+; none from any interface), one drop of the rest, and the
# daemon answering where containers are DNATed to (status checks all of it, and names them).
containers() {
    local st
    # Per endpoint (IMDS, the ECS agent, Pod Identity): 4 DNATs, one drop.
    eq "$(iptables -w -t nat -S PREROUTING | grep -c 'fake-metadata -j DNAT')" 12
    eq "$(iptables -w -t nat -S PREROUTING | grep 'fake-metadata -j DNAT' | grep -vc ' -i ')" 0
    eq "$(iptables -w -S INPUT | grep -c 'fake-metadata -j DROP')" 3
    st=$(fake-metadata status --config /etc/fake-metadata/config.toml)
    grep 'daemon answers containers at' <<<"$st"
    grep -F 'containers admitted from: docker0, br-+, podman+, cni+' <<<"$st"
}
check "container path: nat PREROUTING DNATs from container networks only, filter INPUT drop, status" containers

section "curl (IMDSv1, IMDSv2)"
IID=$(get meta-data/instance-id 2>/dev/null || true)
v1() { info "instance-id: $IID"; [[ $IID =~ ^i-[0-9a-f]{8,17}$ ]]; }
check "IMDSv1 GET meta-data/instance-id" v1
v2() {
    local tok out
    tok=$(curl -fsS --noproxy '*' --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token")
    [ -n "$tok" ]; info "token: ${#tok} bytes"
    out=$(curl -fsS --noproxy '*' --max-time 5 -H "X-aws-ec2-metadata-token: $tok" "$IMDS/latest/meta-data/instance-id")
    eq "$out" "$IID"
    # A wrong token is refused with 401, as on EC2.
    eq "$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 5 -H 'X-aws-ec2-metadata-token: nope' "$IMDS/latest/meta-data/instance-id")" 401
}
check "IMDSv2: PUT api/token, GET with the token (and 401 with a wrong one)" v2
# Issue 27, item 10: a client on this box that connects from another of the box's addresses
# (its NIC's) is local: at hop limit 1 its token PUT is answered. The daemon decides that
# under its unit without netlink's routing (no getifaddrs; AF_NETLINK is for sock_diag).
OWN_ADDR=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
v2_from_own_address() {
    local tok
    info "token PUT from $OWN_ADDR"
    tok=$(curl -fsS --noproxy '*' --max-time 5 --interface "$OWN_ADDR" -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$IMDS/latest/api/token")
    [ -n "$tok" ]
}
if [ -n "$OWN_ADDR" ]; then
    check "IMDSv2 from the box's own NIC address (local without netlink, under the unit)" v2_from_own_address
else
    skipped "IMDSv2 from the box's own NIC address" "no global IPv4 address"
fi
REGION=$(get meta-data/placement/region 2>/dev/null || true)
LOCAL_IPV4=$(get meta-data/local-ipv4 2>/dev/null || true)
info_line() { info "region $REGION, local-ipv4 $LOCAL_IPV4"; [ -n "$REGION" ] && [ -n "$LOCAL_IPV4" ]; }
check "meta-data/placement/region and local-ipv4 answer" info_line

section "AWS clients (no endpoint override)"
have_botocore=0; python3 -c 'import botocore' 2>/dev/null && have_botocore=1
have_boto3=0; python3 -c 'import boto3' 2>/dev/null && have_boto3=1
have_aws=0; command -v aws >/dev/null && have_aws=1
if [ "$have_botocore" = 1 ]; then
    boto_region() {
        local r
        r=$(aws_env python3 -c 'import botocore.session, botocore.utils as u; print(u.IMDSRegionProvider(botocore.session.get_session()).provide())')
        info "botocore $(python3 -c 'import botocore; print(botocore.__version__)'): IMDSRegionProvider -> $r"
        eq "$r" "$REGION"
    }
    check "botocore IMDSRegionProvider gives the region" boto_region
else
    skipped "botocore region" "python3-botocore not installed"
fi
if [ "$have_aws" = 1 ]; then
    # (the version from dpkg when it is Debian's awscli: `aws --version` alone takes ~20 s
    # under QEMU TCG)
    AWS_VERSION=$(dpkg-query -W -f='aws-cli/${Version}' awscli 2>/dev/null || aws_env aws --version 2>&1 | awk '{ print $1 }')
    case $AWS_VERSION in
        aws-cli/2.*)
            # CLI v2 asks IMDS for the region when nothing else sets it: `aws configure list`
            # shows where each value came from.
            cli_region() {
                local row; row=$(aws_env aws configure list | awk '$1 == "region"')
                info "$AWS_VERSION: ${row//  / }"
                eq "$(awk '{ print $2 }' <<<"$row")" "$REGION"
                eq "$(awk '{ print $3 }' <<<"$row")" imds
            }
            check "aws configure list: region from IMDS" cli_region
            ;;
        *) skipped "aws CLI region" "$AWS_VERSION (v1) does not read the region from IMDS" ;;
    esac
else
    skipped "aws CLI region" "aws not installed"
fi

ROLE=$(get meta-data/iam/security-credentials/ 2>/dev/null | head -1 || true)
if [ -z "$ROLE" ]; then
    skipped "IAM credentials (curl, aws, boto3)" "no IAM role served"
else
    KEY_ID=$(get "meta-data/iam/security-credentials/$ROLE" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["Code"]=="Success", d; print(d["AccessKeyId"])' 2>/dev/null || true)
    role_doc() { info "role $ROLE, AccessKeyId $KEY_ID"; [ -n "$KEY_ID" ]; }
    check "curl: iam/security-credentials/$ROLE (Code Success, AccessKeyId)" role_doc
    if [ "$have_aws" = 1 ]; then
        cli_list() {
            local row; row=$(aws_env aws configure list | awk '$1 == "access_key"')
            info "${row//  / }"
            eq "$(awk '{ print $3 }' <<<"$row")" iam-role
            eq "$(awk '{ print $2 }' <<<"$row" | tr -d '*')" "${KEY_ID: -4}"
        }
        check "aws configure list: access_key from iam-role" cli_list
        case ${AWS_VERSION:-} in
            aws-cli/2.*)
                cli_export() {
                    local id
                    id=$(aws_env aws configure export-credentials --format process | python3 -c 'import json,sys; print(json.load(sys.stdin)["AccessKeyId"])')
                    eq "$id" "$KEY_ID"
                }
                check "aws configure export-credentials: the role's AccessKeyId" cli_export ;;
            *) skipped "aws configure export-credentials" "needs CLI v2" ;;
        esac
    else
        skipped "aws CLI credentials" "aws not installed"
    fi
    if [ "$have_boto3" = 1 ]; then
        boto_creds() {
            local out
            out=$(aws_env python3 -c 'import boto3; c = boto3.Session().get_credentials(); print(c.method, c.get_frozen_credentials().access_key)')
            info "boto3: $out"
            eq "$out" "iam-role $KEY_ID"
        }
        check "boto3 Session().get_credentials(): method iam-role, the role's key" boto_creds
    else
        skipped "boto3 credentials" "python3-boto3 not installed"
    fi
fi

section "cloud-init (Ec2 datasource, strict_id: false)"
if ! command -v cloud-init >/dev/null; then
    skipped "cloud-init" "cloud-init not installed"
else
    NONCE=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
    user_data_set() {
        set_table user-data <<<"text = \"#cloud-config\\n# fake-metadata test-installed $NONCE\\n\""
        reload
        wait_for 5 sh -c "curl -fsS --noproxy '*' --max-time 5 $IMDS/latest/user-data | grep -q $NONCE"
        info "$(get user-data | tail -1)"
    }
    check "[user-data] text in config.toml + systemctl reload: served at latest/user-data" user_data_set
    CI=$WORK/cloud-init
    mkdir -p "$CI/lib/data"
    # cloud-init 22.4 drops a `--file` config when it re-reads its configuration half-way
    # through `init` (it then sets the hostname and writes /var/lib/cloud after all), so the
    # test configuration goes in as a drop-in, removed right after (and by the EXIT trap).
    # It points cloud-init's state at a temporary directory and applies nothing: no modules,
    # no network configuration, no hostname.
    cat > "$CI_DROPIN" <<EOF
# Written by fake-metadata's packaging/test-installed.sh for one run; removed right after.
datasource_list: [Ec2]
datasource:
  Ec2:
    strict_id: false
    metadata_urls: ["$IMDS"]
    max_wait: 30
    timeout: 5
network: {config: disabled}
preserve_hostname: true
manage_etc_hosts: false
cloud_init_modules: []
cloud_config_modules: []
cloud_final_modules: []
system_info:
  paths:
    cloud_dir: $CI/lib
    run_dir: $CI/run
EOF
    : > "$CI/lib/data/upgraded-network"      # a second "no network config" switch
    # `cloud-init init` links /run/cloud-init/status.json whatever run_dir says: keep the
    # machine's own files and put them back afterwards.
    CI_SAVED=()
    for f in /run/cloud-init/status.json /run/cloud-init/result.json; do
        if [ -e "$f" ] || [ -L "$f" ]; then cp -a "$f" "$CI/saved.${f##*/}"; CI_SAVED+=("$f"); fi
    done
    HOST_BEFORE=$(hostname)
    # shellcheck disable=SC2012 # a fingerprint of the listing, no names parsed
    VAR_LIB_CLOUD_BEFORE=$(ls -la --time-style=+%s /var/lib/cloud 2>&1 | md5sum)
    touch "$CI/stamp"
    ci_debug() {
        find "$CI" -maxdepth 4 | sed "s|$CI/||" | head -40
        grep -v '^#\|^\*' "$CI/init.log" | tail -10
        grep -E 'WARNING|ERROR|Traceback|Exception' /var/log/cloud-init.log | tail -15 | cut -c1-250
    }
    cloud_init() {
        timeout 180 cloud-init init > "$CI/init.log" 2>&1 || { ci_debug; return 1; }
        grep -E 'Cloud-init v' "$CI/init.log" | head -1 | sed 's/^/INFO: /'
        # run_dir is what /run/cloud-init is by default: instance-data.json sits at its top.
        local data; data=$(find "$CI/run" -name instance-data.json 2>/dev/null | head -1)
        [ -s "$data" ] || { echo "no instance-data.json under $CI/run:"; ci_debug; return 1; }
        local got; got=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["v1"]; print(d["instance_id"], d["platform"], d["region"])' "$data")
        info "instance-data.json v1: instance_id platform region = $got"
        eq "$(awk '{ print $1 }' <<<"$got")" "$IID"
        eq "$(awk '{ print $2 }' <<<"$got")" ec2
        local ud; ud=$(find "$CI/lib" -name user-data.txt 2>/dev/null | head -1)
        [ -n "$ud" ] || { echo "no user-data.txt under $CI/lib"; ci_debug; return 1; }
        grep -q "$NONCE" "$ud" || { echo "$ud:"; cat "$ud"; return 1; }
        info "${ud#"$CI"/}: $(tail -1 "$ud")"
        local q; q=$(cloud-init query -i "$data" v1.instance_id 2>/dev/null || true)
        [ -z "$q" ] || { info "cloud-init query v1.instance_id: $q"; eq "$q" "$IID"; }
    }
    check "cloud-init init (Ec2 datasource): reads our instance-id and user-data" cloud_init
    rm -f "$CI_DROPIN"
    for f in /run/cloud-init/status.json /run/cloud-init/result.json; do rm -f "$f"; done
    for f in "${CI_SAVED[@]}"; do cp -a "$CI/saved.${f##*/}" "$f"; done
    ci_untouched() {
        eq "$(hostname)" "$HOST_BEFORE"
        # shellcheck disable=SC2012 # as above
        eq "$(ls -la --time-style=+%s /var/lib/cloud 2>&1 | md5sum)" "$VAR_LIB_CLOUD_BEFORE"
        local changed; changed=$(find /etc -newer "$CI/stamp" -type f ! -path "$CI_DROPIN" ! -path '/etc/fake-metadata/*' 2>/dev/null)
        [ -z "$changed" ] || { echo "changed under /etc: $changed"; return 1; }
    }
    check "cloud-init left the machine alone (hostname, /var/lib/cloud, /etc)" ci_untouched
    restore_conf() { cat "$CONF_BACKUP" > "$CONF"; reload; wait_for 5 sh -c "! curl -fsS --noproxy '*' --max-time 5 $IMDS/latest/user-data 2>/dev/null | grep -q $NONCE"; }
    check "config.toml restored + reload: test user-data gone" restore_conf
fi

section "log file (reopened on reload)"
LOG=$(fake-metadata print-config --config "$CONF" 2>/dev/null | awk '/^\[/ { s = $0 } s == "[log]" && $1 == "file" { gsub(/"/, "", $3); print $3 }')
REQS=$(fake-metadata print-config --config "$CONF" 2>/dev/null | awk '/^\[/ { s = $0 } s == "[log]" && $1 == "requests" { print $3 }')
if [ -z "$LOG" ] || [ "$REQS" != true ]; then
    skipped "log reopen" "the config sets no [log] file with requests = true"
else
    log_reopen() {
        local pid marker=fm-reopen-$RANDOM$RANDOM
        get meta-data/instance-id >/dev/null
        wait_for 3 test -s "$LOG"
        pid=$(main_pid)
        mv "$LOG" "$LOG.test-installed"
        reload
        sleep 0.5
        curl -s -o /dev/null --noproxy '*' --max-time 5 "$IMDS/latest/meta-data/$marker"
        wait_for 5 grep -q "$marker" "$LOG"
        info "new $LOG: $(grep "$marker" "$LOG" | tail -1 | cut -c1-150)"
        # (a bare `! grep` would not fail the check: set -e ignores a negated command)
        if grep -q "$marker" "$LOG.test-installed"; then echo "the request was logged to the old file"; return 1; fi
        eq "$(main_pid)" "$pid"
        # Join the two again (a second reopen) so the machine keeps one log.
        cat "$LOG" >> "$LOG.test-installed"
        mv "$LOG.test-installed" "$LOG"
        reload
    }
    check "systemctl reload reopens $LOG (same MainPID, request lines go to the new file)" log_reopen
fi

if [ "$PURGE" = 0 ]; then
    skipped "apt-get purge" "--no-purge"
else
    section "apt-get purge"
    check "apt-get purge -y fake-metadata" apt-get -o DPkg::Lock::Timeout=300 purge -y -q fake-metadata
    check "no user fake-metadata, no groups" sh -c '! getent passwd fake-metadata && ! getent group fake-metadata && ! getent group fake-metadata-ctl'
    check "no /etc/fake-metadata, /var/log/fake-metadata, /var/lib/fake-metadata" sh -c '! ls -d /etc/fake-metadata /var/log/fake-metadata /var/lib/fake-metadata 2>/dev/null'
    check "no 169.254.169.254 on lo" sh -c '! ip -o -4 addr show dev lo | grep -F 169.254.169.254'
    check "no tagged nat OUTPUT rule" sh -c '! iptables -w -t nat -S OUTPUT | grep fake-metadata'
    check "no tagged nat PREROUTING or filter INPUT rule" sh -c '! iptables -w -t nat -S PREROUTING | grep fake-metadata && ! iptables -w -S INPUT | grep fake-metadata'
    check "no fake-metadata process, dpkg knows nothing" sh -c '! pgrep -x fake-metadata && ! dpkg -s fake-metadata >/dev/null 2>&1'
fi

echo
[ "$skip" -eq 0 ] || echo "$skip skipped"
[ "$fail" -eq 0 ] || echo "failed: ${FAILED[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
