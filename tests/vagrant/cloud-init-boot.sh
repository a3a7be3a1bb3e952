#!/bin/bash
# Issue 26, "cloud-init sees EC2", inside the Vagrant box (run by tests/vagrant/run.sh as
# `vagrant ssh -c 'sudo bash /vagrant/tests/vagrant/cloud-init-boot.sh'` in box2, after it
# turned the box's cloud-init on, ran `cloud-init clean --logs` and rebooted it): the boot
# that just happened is an EC2 instance's first boot as cloud-init sees it.
#   - the firmware says EC2 (the Vagrantfile's DMI values): vendor, UUID and serial "ec2...";
#   - ds-identify chose Ec2, cloud-init ran its Ec2 datasource, `cloud-id` says aws, and
#     `cloud-init query` gives this box's instance id;
#   - IMDSv2: cloud-init's first request was the token PUT, answered at the first attempt,
#     and the daemon logged that PUT (200) before cloud-init's GETs, all with a token;
#   - the boot order: fake-metadata.service was ready before cloud-init-local.service
#     started, and systemd found no ordering cycle.
# Prints "N passed, N failed" last.
#
# Usage (root, in the box, after the boot to check): bash cloud-init-boot.sh
set -uo pipefail

IMDS=http://169.254.169.254
CLOG=/var/log/cloud-init.log
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
. "$(dirname "$0")/check.sh"

info() { printf '      %s\n' "$*"; }
lower() { tr '[:upper:]' '[:lower:]' <<<"$1"; }
iid() {
    local tok; tok=$(curl -fsS --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$IMDS/latest/api/token")
    curl -fsS --max-time 5 -H "X-aws-ec2-metadata-token: $tok" "$IMDS/latest/meta-data/instance-id"
}

# The daemon's request log ([log] file, requests = true: the Vagrantfile's config) from its
# start this boot on (its "listening" line), read before this script sends any request; the
# journal has the same as structured fields.
access=$(awk '/listening/ { n = NR; delete l } { l[NR] = $0 } END { for (i = n + 1; i <= NR; i++) print l[i] }' \
    /var/log/fake-metadata/fake-metadata.log | grep -F 'method=')

# ---------------------------------------------------------------- the firmware
VENDOR=$(cat /sys/class/dmi/id/sys_vendor)
UUID=$(cat /sys/class/dmi/id/product_uuid)
SERIAL=$(cat /sys/class/dmi/id/product_serial)
info "DMI: sys_vendor '$VENDOR', product_uuid $UUID, product_serial $SERIAL; systemd-detect-virt: $(systemd-detect-virt)"
check "DMI sys_vendor is 'Amazon EC2'" eq "$VENDOR" "Amazon EC2"
check "DMI product_uuid begins 'ec2' and equals product_serial (cloud-init 22.4 wants both)" \
    sh -c "case '$(lower "$UUID")' in ec2*) [ '$(lower "$UUID")' = '$(lower "$SERIAL")' ];; *) false;; esac"

# ---------------------------------------------------------------- cloud-init's verdict
status=$(timeout 600 cloud-init status --wait --long 2>&1)
info "cloud-init $(cloud-init --version 2>&1 | awk '{ print $NF }'):"
printf '%s\n' "$status" | sed 's/^/        /'
# The stages that read the metadata (local, network) without an error; the later stages'
# module errors are shown (the CI box is minimal: e.g. its `locale` module fails there).
stages() {
    python3 - <<'PY'
import json, sys
v1 = json.load(open("/run/cloud-init/status.json"))["v1"]
bad = 0
for stage in ("init-local", "init", "modules-config", "modules-final"):
    errs = (v1.get(stage) or {}).get("errors", [])
    print(f"{stage}: {len(errs)} errors" + "".join(f"\n    {e[:160]}" for e in errs))
    bad += stage in ("init-local", "init") and len(errs)
sys.exit(1 if bad else 0)
PY
}
stages | sed 's/^/        /'
check "cloud-init's local and network stages (init-local, init): no errors (status.json)" stages
check "ds-identify chose Ec2 (/run/cloud-init/cloud.cfg)" \
    sh -c "cat /run/cloud-init/cloud.cfg; grep -Eq '^datasource_list: \[ ?Ec2, None ?\]' /run/cloud-init/cloud.cfg"
ds=$(python3 -c 'import json; print(json.load(open("/run/cloud-init/status.json"))["v1"]["datasource"])' 2>&1)
info "status.json datasource: $ds"
check "cloud-init's datasource is Ec2 (DataSourceEc2Local, from the local stage)" grep -q '^DataSourceEc2Local' <<<"$ds"
cid=$(cloud-id 2>&1)
info "cloud-id: $cid"
check "cloud-id = aws" eq "$cid" aws
for key in cloud_name platform v1.instance_id; do
    val=$(cloud-init query "$key" 2>&1)
    info "cloud-init query $key: $val"
    case $key in
        cloud_name) check "cloud-init query cloud_name = aws" eq "$val" aws ;;
        platform) check "cloud-init query platform = ec2" eq "$val" ec2 ;;
        v1.instance_id) check "cloud-init query v1.instance_id = the box's instance id" eq "$val" "$(iid)" ;;
    esac
done

# ---------------------------------------------------------------- IMDSv2 at the first attempt
grep -E 'api/token|Fetching Ec2 IMDSv2|Crawl of metadata service|Using metadata source' "$CLOG" | head -8 | cut -c1-200 | sed 's/^/        /'
first_token() {
    # cloud-init's first request to the metadata service is the token PUT ...
    local first; first=$(grep -E -m1 "\] open '$IMDS/" "$CLOG" || grep -E -m1 "$IMDS/" "$CLOG")
    echo "first request: $first"
    grep -q "$IMDS/latest/api/token" <<<"$first"
    # ... and it was answered (200) at the first attempt.
    grep -Eq "Read from $IMDS/latest/api/token \(200, [0-9]+b\) after 1 attempts" "$CLOG"
}
check "cloud-init: first request the token PUT, answered at the first attempt (cloud-init.log)" first_token
printf '%s\n' "$access" | head -4 | cut -c1-200 | sed 's/^/        /'
daemon_v2() {
    # The first request the daemon served this boot is a token PUT (200) ...
    # (The log quotes the path: path="/latest/api/token".)
    head -1 <<<"$access" | grep -F 'method=PUT' | grep -F '/latest/api/token' | grep -qF 'status=200'
    # ... and every GET after it carried a token.
    local gets v1; gets=$(grep -cF 'method=GET' <<<"$access" || true)
    v1=$(grep -F 'method=GET' <<<"$access" | grep -cF 'v2=false' || true)
    echo "GETs this boot: $gets, without a token: $v1"
    grep -F 'method=GET' <<<"$access" | grep -F 'v2=false' | head -5 || true
    [ "$gets" -gt 0 ] && [ "$v1" = 0 ]
}
check "daemon (request log, this boot): token PUT 200 first, then only GETs with a token (v2=true)" daemon_v2

# ---------------------------------------------------------------- boot order
mono() { systemctl show -p "$2" --value "$1"; }
ready=$(mono fake-metadata.service ActiveEnterTimestampMonotonic)
icpt=$(mono fake-metadata-intercept.service ActiveEnterTimestampMonotonic)
local_start=$(mono cloud-init-local.service InactiveExitTimestampMonotonic)
net_start=$(mono cloud-init.service InactiveExitTimestampMonotonic)
info "since boot (us): intercept active $icpt, fake-metadata ready $ready, cloud-init-local started $local_start, cloud-init started $net_start"
journalctl -b -o short-monotonic --no-hostname -u fake-metadata-intercept.service -u fake-metadata.service -u cloud-init-local.service -u cloud-init.service |
    grep -E 'Start(ing|ed)|Finished|listening' | head -12 | cut -c1-160 | sed 's/^/        /'
check "boot: fake-metadata.service ready before cloud-init-local.service started" \
    sh -c "[ '$ready' -gt 0 ] && [ '$icpt' -gt 0 ] && [ '$icpt' -le '$ready' ] && [ '$ready' -lt '$local_start' ] && [ '$local_start' -le '$net_start' ]"
check "boot: no ordering cycle in the journal" sh -c "! journalctl -b -o cat | grep -i 'ordering cycle'"
check "systemd-analyze verify (our units and cloud-init's): no cycle" \
    sh -c "! systemd-analyze verify --man=no fake-metadata.service fake-metadata-intercept.service cloud-init-local.service cloud-init.service 2>&1 | grep -i cycle"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
