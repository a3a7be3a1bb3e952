#!/bin/bash
# Tier-B system test: install the fake-metadata .deb from a local APT repository into a
# booted Debian container (systemd as PID 1 in systemd-nspawn, PRIVATE network namespace)
# and check the package end to end: units, sd_notify, user, interception, IMDSv1/v2
# through unmodified curl, idempotent reinstall, journald, logrotate + SIGHUP, bad-config
# reload, unit hygiene, remove and purge. The same checks for every suite and architecture:
# an arm64 root runs under qemu-user 11 (binfmt_misc, F flag), systemd included (its
# iptables excepted: see MORE_ARCHES).
#
# Usage (as root):  tests/system/nspawn.sh [REPO_DIR]
#                   tests/system/nspawn.sh --rootfs-only
#   REPO_DIR  directory holding the .deb(s) and their Packages index, as written by
#             packaging/build-deb (default: target/debian)
#   --rootfs-only  only the host's packages and the root (built unless cached), no container:
#             what tests/all.sh starts early, beside other tiers; a run waits for that build
# Env:
#   SUITE=bookworm|trixie    the Debian release of the container (default bookworm)
#   ARCH=amd64|arm64         its architecture (default: the host's); arm64 is emulated
#   MIRROR, SECURITY_MIRROR  Debian mirrors (default: read from /etc/apt/sources.list*)
#   KEEP=1                   keep the extracted rootfs and logs (path printed at the end)
#   CACHE_DIR                rootfs tarball cache (default /var/cache/fake-metadata-ci)
#
# SAFETY: nothing of the package runs on the host. It is only ever installed inside
# `systemd-nspawn --register=no --keep-unit --private-network`, whose network namespace
# is private: its 169.254.169.254 and iptables rules are not the host's.
set -euo pipefail

LIB_NAME=nspawn.sh
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root"
ROOTFS_ONLY=0
if [ "${1:-}" = --rootfs-only ]; then ROOTFS_ONLY=1; shift; fi
REPO=${1:-target/debian}
SUITE=${SUITE:-bookworm}
ARCH=${ARCH:-$(dpkg --print-architecture)}
DEB=
if [ "$ROOTFS_ONLY" = 0 ]; then
    [ -d "$REPO" ] || die "no such directory: $REPO (build it with packaging/build-deb)"
    REPO=$(realpath "$REPO")
    ls "$REPO"/fake-metadata_*_"$ARCH".deb >/dev/null 2>&1 || die "no fake-metadata_*_$ARCH.deb in $REPO (packaging/build-deb --arch $ARCH)"
    [ -f "$REPO/Packages" ] || die "no Packages index in $REPO (packaging/build-deb writes it)"
    # shellcheck disable=SC2012 # the newest package: ls -t sorts by time
    DEB=$(ls -t "$REPO"/fake-metadata_*_"$ARCH".deb | head -1)
fi
export DEBIAN_FRONTEND=noninteractive
CACHE_DIR=${CACHE_DIR:-/var/cache/fake-metadata-ci}
PKGS=systemd,systemd-sysv,dbus,iproute2,iptables,curl,ca-certificates,procps,logrotate,adduser
HOST_ARCH=$(dpkg --print-architecture)
MORE_ARCHES=
if [ "$ARCH" != "$HOST_ARCH" ]; then
    # qemu-user emulates neither NETLINK_NETFILTER (iptables-nft, nft: "Failed to initialize
    # nft: Protocol not supported") nor iptables-legacy's socket options ("Table does not
    # exist"): no netfilter rule can be made by an emulated program. The emulated root's
    # iptables is therefore the host architecture's build (Debian's iptables is Multi-Arch:
    # foreign, so it satisfies the package's Depends), run natively by the host's kernel;
    # everything else, fake-metadata and systemd included, is $ARCH under qemu-user.
    PKGS=${PKGS/,iptables,/,iptables:$HOST_ARCH,}
    MORE_ARCHES=$HOST_ARCH
fi
echo "container: Debian $SUITE $ARCH; package: ${DEB:+$(basename "$DEB")}${DEB:-none (--rootfs-only)}"
# Waits and timeouts grow under emulation (an arm64 container runs every program, systemd
# included, under qemu-user: several times slower than natively).
SLOW=1
[ "$ARCH" = "$HOST_ARCH" ] || SLOW=${SLOW_FACTOR:-6}
MAXT=$((5 * SLOW))
nap() { sleep "$(awk -v a="$1" -v f="$SLOW" 'BEGIN { print a * f }')"; }

# ---------------------------------------------------------------- host dependencies
step "host dependencies"
host_install systemd-container mmdebstrap lintian dpkg-dev zstd
if [ "$ARCH" != "$HOST_ARCH" ]; then
    [ "$ARCH" = arm64 ] || die "only arm64 can be emulated here (ARCH=$ARCH)"
    ensure_arm64_emulation || die "arm64 emulation is not available (see above)"
    echo "binfmt_misc qemu-aarch64: $(tr '\n' ' ' < /proc/sys/fs/binfmt_misc/qemu-aarch64)"
fi

# ---------------------------------------------------------------- rootfs (cached)
step "rootfs ($SUITE/$ARCH)"
resolve_mirrors "$SUITE"
TARBALL=$(rootfs_tarball "$SUITE" "$ARCH" "$PKGS" "$CACHE_DIR" "$MORE_ARCHES") || die "mmdebstrap of $SUITE/$ARCH failed"
# One line, the path of a file: anything else is a helper that wrote on stdout (issue 28).
if [ "$(printf '%s\n' "$TARBALL" | wc -l)" != 1 ] || [ ! -s "$TARBALL" ]; then
    die "rootfs_tarball returned no tarball path: $(printf '%q' "$TARBALL")"
fi
if [ "$ROOTFS_ONLY" = 1 ]; then print_times; exit 0; fi
echo "mirror: $MIRROR   security: $SECURITY_MIRROR   repo: $REPO"
WORK=$(mktemp -d /var/tmp/fake-metadata-nspawn.XXXXXX)
ROOT=$WORK/rootfs
mkdir "$ROOT"
tar --zstd -xpf "$TARBALL" -C "$ROOT" --numeric-owner
echo 'deb [trusted=yes] file:/srv/fake-metadata-repo ./' > "$ROOT/etc/apt/sources.list.d/fake-metadata-local.list"
# The root's own programs must run (under emulation: qemu-user through binfmt_misc,
# whose F flag makes it work in a chroot or container too).
chroot "$ROOT" /bin/true || die "cannot run the $ARCH root's /bin/true (qemu-user / binfmt_misc)"
if [ "$ARCH" != "$HOST_ARCH" ]; then
    # qemu-user has no new mount API (fsopen, fsmount, move_mount: ENOSYS), with which
    # systemd 257 mounts a unit's credentials directory; it falls back to a plain directory
    # only on a privilege error, so every unit with ImportCredential= dies at step
    # CREDENTIALS (status 243): journald, sysctl, sysusers, tmpfiles. Those units import no
    # credential here anyway (none are passed to the container): reset the setting for them.
    # fake-metadata's units use no credentials and are not touched.
    mapfile -t units < <(grep -l '^ImportCredential=' "$ROOT"/usr/lib/systemd/system/*.service || true)
    for u in "${units[@]}"; do
        mkdir -p "$ROOT/etc/systemd/system/$(basename "$u").d"
        printf '# tests/system/nspawn.sh: qemu-user cannot mount a credentials directory\n[Service]\nImportCredential=\n' \
            > "$ROOT/etc/systemd/system/$(basename "$u").d/qemu-user.conf"
    done
fi
step "rootfs extracted to $ROOT"

# ---------------------------------------------------------------- chroot install
# What an image build does: dpkg -i in a chroot without systemd running. The postinst
# must leave the network alone (a chroot shares the host's network namespace) and only
# enable the units. Wrapped in unshare --net, so even a faulty postinst cannot reach the
# host's network; the checks run inside that same namespace.
CHROOT=$WORK/chroot
mkdir "$CHROOT"
tar --zstd -xpf "$TARBALL" -C "$CHROOT" --numeric-owner
cp "$DEB" "$CHROOT/tmp/fake-metadata.deb"
step "chroot rootfs extracted to $CHROOT"

# ---------------------------------------------------------------- boot + teardown
NSPAWN=
LEADER=
# On a host whose PID 1 is not systemd, systemd-nspawn --keep-unit moves itself to
# /supervisor and the container to /payload at the root of the name=systemd and unified
# hierarchies, and leaves both behind (empty) when it exits. Only one container of this
# kind can run at a time (wait for another one). Remember which existed before, to remove
# only ours.
step "wait for any other systemd-nspawn to finish"
wait_for_no_nspawn
NSPAWN_CGROUPS=$(ls -d /sys/fs/cgroup/*/payload /sys/fs/cgroup/*/supervisor 2>/dev/null || true)
[ -z "$NSPAWN_CGROUPS" ] || echo "warning: leftover nspawn cgroups from an earlier run: $NSPAWN_CGROUPS" >&2
teardown() {
    local rc=$?
    set +e
    if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
        [ -n "$LEADER" ] && nsenter -t "$LEADER" -a systemctl exit 0 >/dev/null 2>&1
        for _ in $(seq $((100 * SLOW))); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$NSPAWN" 2>/dev/null; then
            echo "nspawn.sh: container did not exit, sending SIGTERM to nspawn $NSPAWN" >&2
            kill "$NSPAWN"; sleep 2
            # A second SIGTERM makes nspawn terminate at once (a container whose systemd
            # cannot halt, e.g. a broken emulated one, ignores the first).
            kill -0 "$NSPAWN" 2>/dev/null && { kill "$NSPAWN"; sleep 2; }
        fi
        wait "$NSPAWN" 2>/dev/null
    fi
    # Remove the cgroups nspawn left behind (rmdir only succeeds on empty ones).
    if [ -z "$NSPAWN_CGROUPS" ] && [ -n "$NSPAWN" ]; then
        for d in /sys/fs/cgroup/*/payload /sys/fs/cgroup/*/supervisor; do
            [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
        left=$(ls -d /sys/fs/cgroup/*/payload /sys/fs/cgroup/*/supervisor 2>/dev/null)
        [ -z "$left" ] || echo "nspawn.sh: could not remove cgroups: $left" >&2
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

step "boot container"
systemd-nspawn -q --register=no --keep-unit --private-network -D "$ROOT" -M fmci \
    --bind-ro="$REPO:/srv/fake-metadata-repo" -b --console=pipe </dev/null >"$WORK/nspawn.log" 2>&1 &
NSPAWN=$!
state=
for _ in $(seq $((300 * SLOW))); do
    kill -0 "$NSPAWN" 2>/dev/null || { cat "$WORK/nspawn.log" >&2; die "systemd-nspawn exited early"; }
    # The container's PID 1 is the child of systemd-nspawn that runs `systemd`.
    [ -n "$LEADER" ] || LEADER=$(ps -o pid=,comm= --ppid "$NSPAWN" 2>/dev/null | awk '$2 == "systemd" { print $1; exit }' || true)
    if [ -n "$LEADER" ]; then
        state=$(nsenter -t "$LEADER" -a systemctl is-system-running --wait 2>/dev/null || true)
        case $state in running|degraded) break ;; esac
    fi
    sleep 0.2
done
case $state in running|degraded) ;; *) die "container did not boot (state '$state')";; esac
echo "container leader pid $LEADER, system state: $state"
[ "$state" = running ] || nsenter -t "$LEADER" -a systemctl --failed --no-legend || true

# ---------------------------------------------------------------- helpers
C() { nsenter -t "$LEADER" -a "$@"; }                     # run in the container
RUN() {                                                   # ... as a transient unit
    C systemd-run --wait --pipe --quiet -E DEBIAN_FRONTEND=noninteractive "$@" </dev/null
}
AS_NOBODY() { RUN -p User=nobody -p Group=nogroup "$@"; }
pass=0
fail=0
FAILED=()
LAST=$WORK/last-check.out
# Each check runs in a subshell with errexit in force (a function called from an `if`
# would silently ignore failures of all but its last command).
check() {
    local name=$1 rc=0; shift
    set +e
    ( set -e; "$@" ) >"$LAST" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1)); printf 'ok    %s\n' "$name"
    else
        fail=$((fail + 1)); FAILED+=("$name"); printf 'FAIL  %s\n' "$name"
        sed 's/^/      | /' "$LAST" | tail -15
    fi
}
IMDS=http://169.254.169.254
IID_PATH=/latest/meta-data/instance-id
CONF=/etc/fake-metadata/config.toml
LOGFILE=/var/log/fake-metadata/fake-metadata.log

eq() { [ "$1" = "$2" ] || { echo "expected '$2', got '$1'"; return 1; }; }
# The endpoints' addresses: IMDS, the ECS agent, Pod Identity; each its own REDIRECT.
ENDPOINTS=(169.254.169.254 169.254.170.2 169.254.170.23)
n_addr() { C ip -o -4 addr show dev lo | grep -cE ' 169\.254\.(169\.254|170\.2|170\.23)/32 ' || true; }
n_rule() { C iptables -w -t nat -S OUTPUT | grep -c fake-metadata || true; }
one_addr() {
    local a lo; lo=$(C ip -o -4 addr show dev lo)
    for a in "${ENDPOINTS[@]}"; do eq "$(grep -cF " $a/32 " <<<"$lo" || true)" 1; done
}
one_rule() {
    local a out; out=$(C iptables -w -t nat -S OUTPUT); echo "$out"
    eq "$(grep -c fake-metadata <<<"$out" || true)" 3
    for a in "${ENDPOINTS[@]}"; do eq "$(grep -c -- "-d $a/32 .*fake-metadata -j REDIRECT" <<<"$out" || true)" 1; done
}
no_addr() { eq "$(n_addr)" 0; }
no_rule() { C iptables -w -t nat -S OUTPUT; eq "$(n_rule)" 0; }
# The container path: a DNAT per container network (docker0, br-+, podman+, cni+; none from
# any interface), one drop of the rest, and the daemon, under its unit's sandbox, listening
# where containers are DNATed to (`status` probes it).
container_rules() {
    C iptables -w -t nat -S PREROUTING; C iptables -w -S INPUT
    # Per endpoint: 4 DNATs, one drop.
    eq "$(C iptables -w -t nat -S PREROUTING | grep -c 'fake-metadata -j DNAT' || true)" 12
    eq "$(C iptables -w -t nat -S PREROUTING | grep 'fake-metadata -j DNAT' | grep -vc ' -i ' || true)" 0
    eq "$(C iptables -w -S INPUT | grep -c 'fake-metadata -j DROP' || true)" 3
}
container_path() {
    local st
    container_rules
    st=$(C fake-metadata status --config "$CONF"); echo "$st"
    grep -F 'daemon answers containers at http://169.254.169.254:1338/' <<<"$st"
    grep -F 'containers at http://169.254.170.2:1339/' <<<"$st"
    grep -F 'containers at http://169.254.170.23:1340/' <<<"$st"
}
no_container_rules() {
    eq "$(C iptables -w -t nat -S PREROUTING | grep -c fake-metadata || true)" 0
    eq "$(C iptables -w -S INPUT | grep -c fake-metadata || true)" 0
}
main_pid() { C systemctl show -p MainPID --value fake-metadata.service; }
is_active() { eq "$(C systemctl is-active "$1" || true)" active; }
v1_iid() {
    local out; out=$(AS_NOBODY curl -fsS --max-time "$MAXT" "$IMDS$IID_PATH")
    echo "instance-id: $out"; [[ $out =~ ^i-[0-9a-f]{8,17}$ ]]
}
v2_iid() {
    local tok out
    tok=$(AS_NOBODY curl -fsS --max-time "$MAXT" -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' "$IMDS/latest/api/token")
    echo "token: ${tok:0:16}... (${#tok} bytes)"; [ -n "$tok" ]
    out=$(AS_NOBODY curl -fsS --max-time "$MAXT" -H "X-aws-ec2-metadata-token: $tok" "$IMDS$IID_PATH")
    echo "instance-id: $out"; [[ $out =~ ^i-[0-9a-f]{8,17}$ ]]
}
# Wait up to ~5 s for a journal line of a unit since a timestamp.
journal_has() {
    local unit=$1 since=$2 pattern=$3
    for _ in $(seq $((25 * SLOW))); do
        C journalctl -u "$unit" --since "@$since" -o cat --no-pager | grep -E -- "$pattern" && return 0
        sleep 0.2
    done
    echo "no journal line matching /$pattern/ since @$since:"; C journalctl -u "$unit" --since "@$since" -o cat --no-pager | tail -10
    return 1
}
wait_active() { for _ in $(seq $((50 * SLOW))); do is_active "$1" >/dev/null && return 0; sleep 0.1; done; is_active "$1"; }

# ---------------------------------------------------------------- checks
step "lintian"
lintian_clean() {
    local rc=0 out
    out=$(lintian --fail-on warning "$DEB" 2>&1) || rc=$?
    grep -v 'running with root privileges' <<<"$out" || true
    return "$rc"
}
check "lintian --fail-on warning (overrides shipped in the package): $(basename "$DEB")" lintian_clean

step "chroot install (no systemd, unshare --net)"
chroot_install() {
    unshare --net --mount --pid --fork --mount-proc chroot "$CHROOT" /bin/sh -ec '
        ip link set lo up
        dpkg -i /tmp/fake-metadata.deb
        echo "--- addresses on lo:"; ip -o -4 addr show dev lo
        echo "--- tagged rules: $(iptables -w -t nat -S OUTPUT | grep -c fake-metadata || true)"
        ! ip -o -4 addr show dev lo | grep -q 169.254.169.254
        ! iptables -w -t nat -S OUTPUT | grep -q fake-metadata
        test -L /etc/systemd/system/multi-user.target.wants/fake-metadata.service
        test -L /etc/systemd/system/multi-user.target.wants/fake-metadata-intercept.service
        getent passwd fake-metadata
        dpkg --purge fake-metadata
        ! getent passwd fake-metadata
        ! test -e /etc/systemd/system/multi-user.target.wants/fake-metadata.service
    '
}
check "chroot install+purge: network untouched, units enabled, purge clean" chroot_install
rm -rf "$CHROOT"

step "apt-get install fake-metadata"
apt_install() {
    # Refresh only the local repository (the container has no network); keep other lists.
    RUN apt-get update -q -o Dir::Etc::sourcelist=sources.list.d/fake-metadata-local.list \
        -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
    RUN apt-get install -y fake-metadata
}
check "apt-get install -y fake-metadata (local apt repository)" apt_install
cp "$LAST" "$WORK/install.log"

step "service checks"
check "fake-metadata.service active" wait_active fake-metadata.service
check "fake-metadata-intercept.service active" is_active fake-metadata-intercept.service
check "both units enabled" eq "$(C systemctl is-enabled fake-metadata.service fake-metadata-intercept.service | sort -u)" enabled
check "Type=notify" eq "$(C systemctl show -p Type --value fake-metadata.service)" notify
main_user() { local p; p=$(main_pid); echo "MainPID=$p"; [ "$p" != 0 ]; eq "$(C stat -c %U "/proc/$p")" fake-metadata; }
check "MainPID runs as user fake-metadata (not root)" main_user
check "system user and groups exist" C sh -c 'getent passwd fake-metadata && getent group fake-metadata && getent group fake-metadata-ctl'
check "config is a conffile" C sh -c "dpkg-query -W -f='\${Conffiles}' fake-metadata | grep -q ' $CONF '"

step "interception"
check "curl as nobody, IMDSv1: $IID_PATH" v1_iid
check "curl as nobody, IMDSv2 (PUT token, GET with token)" v2_iid
# Issue 27, item 10: a client connecting from another address of the box (not loopback, not
# 169.254.169.254) is local, so its token PUT is answered at hop limit 1. The daemon decides
# that under the real unit without asking netlink's routing (getifaddrs): the unit allows
# AF_NETLINK for sock_diag only. The container's network is private and has only lo: an address on lo (not
# loopback's 127/8) stands for the box's NIC address.
v2_from_own_address() {
    C ip addr replace 192.0.2.77/32 dev lo
    local tok rc=0
    tok=$(AS_NOBODY curl -fsS --max-time "$MAXT" --interface 192.0.2.77 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$IMDS/latest/api/token") || rc=$?
    C ip addr del 192.0.2.77/32 dev lo
    echo "token PUT from 192.0.2.77: curl exit $rc, ${#tok} bytes"
    [ "$rc" = 0 ] && [ -n "$tok" ]
}
check "IMDSv2 from another address of the box: local without netlink, under the unit (issue 27)" v2_from_own_address
check "exactly one 169.254.169.254/32, 169.254.170.2/32 and 169.254.170.23/32 on lo" one_addr
check "exactly one tagged nat OUTPUT REDIRECT per endpoint" one_rule
check "container path: a DNAT per container network and endpoint, a drop per endpoint, the daemon listens on 169.254.169.254:1338, 169.254.170.2:1339, 169.254.170.23:1340 (status)" container_path

step "live control (ctl over /run/fake-metadata/control.sock)"
SOCK=/run/fake-metadata/control.sock
check "control socket is 0660, group fake-metadata-ctl" eq "$(C stat -c '%a %G' "$SOCK")" "660 fake-metadata-ctl"
ctl_spot() {
    C fake-metadata ctl spot --action stop
    local body; body=$(AS_NOBODY curl -fsS --max-time "$MAXT" "$IMDS/latest/meta-data/spot/instance-action")
    echo "instance-action: $body"
    [[ $body =~ ^\{\"action\":\ \"stop\",\ \"time\":\ \"[0-9T:-]+Z\"\}$ ]]
    AS_NOBODY curl -fsS --max-time "$MAXT" "$IMDS/latest/meta-data/" | grep -qx 'spot/'
}
check "root: ctl spot --action stop -> spot/instance-action through 169.254.169.254" ctl_spot
ctl_member() {
    C useradd --no-create-home --groups fake-metadata-ctl fmctl
    RUN -p User=fmctl fake-metadata ctl asg Standby
    eq "$(AS_NOBODY curl -fsS --max-time "$MAXT" "$IMDS/latest/meta-data/autoscaling/target-lifecycle-state")" Standby
}
check "member of fake-metadata-ctl: ctl asg Standby" ctl_member
C userdel fmctl >/dev/null 2>&1 || true
ctl_refused() {
    local rc=0 out
    out=$(AS_NOBODY fake-metadata ctl status 2>&1) || rc=$?
    echo "$out"; eq "$rc" 1; grep -q 'fake-metadata-ctl' <<<"$out"
}
check "nobody (not a member): ctl refused, exit 1, says which group" ctl_refused
ctl_reset() {
    C fake-metadata ctl reset
    eq "$(AS_NOBODY curl -s -o /dev/null -w '%{http_code}' --max-time "$MAXT" "$IMDS/latest/meta-data/spot/instance-action")" 404
}
check "ctl reset: spot/instance-action is 404 again" ctl_reset
check "journal: startup line containing 'listening'" journal_has fake-metadata.service 0 listening

step "reinstall"
check "apt-get install --reinstall fake-metadata" RUN apt-get install -y --reinstall fake-metadata
check "after reinstall: one address" one_addr
check "after reinstall: one rule" one_rule
check "after reinstall: one copy of each container rule" container_rules
active_answers() { wait_active fake-metadata.service; v1_iid; }
check "after reinstall: active, IMDSv1 answers" active_answers

step "reload (ExecReload, no /bin/kill needed)"
reload_ok() {
    local before after; before=$(main_pid)
    C systemctl reload fake-metadata.service
    nap 0.3; after=$(main_pid)
    echo "MainPID $before -> $after"; eq "$after" "$before"; is_active fake-metadata.service
}
check "systemctl reload keeps the same MainPID" reload_ok

step "log file + logrotate"
ensure_log_file() {
    # The packaged config may not log to a file, or not log requests: set
    # `[log] file` and `requests = true` (section-aware), then restart.
    C awk -v f="$LOGFILE" '
        function emit() { if (!done) { print "file = \"" f "\""; print "requests = true"; done = 1 } }
        /^[[:space:]]*\[/ { insec = ($0 ~ /^[[:space:]]*\[log\][[:space:]]*(#.*)?$/); print; if (insec) emit(); next }
        insec && /^[[:space:]]*(file|requests)[[:space:]]*=/ { next }
        { print }
        END { if (!done) { print ""; print "[log]"; emit() } }
    ' "$CONF" > "$WORK/config.toml.new"
    C sh -c "cat > '$CONF'" < "$WORK/config.toml.new"
    C sed -n '/^\[log\]/,/^\[/p' "$CONF"
    C systemctl restart fake-metadata.service
    AS_NOBODY curl -fsS --max-time "$MAXT" "$IMDS$IID_PATH" >/dev/null
    nap 0.3
    C ls -l /var/log/fake-metadata/
    C test -s "$LOGFILE"
}
check "daemon writes $LOGFILE" ensure_log_file
C cp "$CONF" /root/config.toml.orig
rotate() {
    C logrotate -v -f /etc/logrotate.d/fake-metadata 2>&1 | tail -5
    nap 0.5
    C ls -l /var/log/fake-metadata/
    C test -s "$LOGFILE.1"
    local s0 s1
    s0=$(C sh -c "stat -c %s '$LOGFILE' 2>/dev/null || echo 0")
    AS_NOBODY curl -fsS --max-time "$MAXT" "$IMDS/latest/meta-data/?after-rotate" >/dev/null || true
    AS_NOBODY curl -fsS --max-time "$MAXT" "$IMDS$IID_PATH" >/dev/null
    nap 0.5
    s1=$(C sh -c "stat -c %s '$LOGFILE' 2>/dev/null || echo 0")
    echo "new $LOGFILE: $s0 -> $s1 bytes"; [ "$s1" -gt "$s0" ]
    C tail -3 "$LOGFILE"
}
check "logrotate -f rotates; next request logs to the new file" rotate

step "SIGHUP with a broken config"
bad_reload() {
    local pid since; pid=$(main_pid); since=$(date +%s)
    C sh -c "{ echo 'bogus-key = 1'; cat /root/config.toml.orig; } > '$CONF'"
    C systemctl kill -s HUP --kill-whom=main fake-metadata.service
    journal_has fake-metadata.service "$since" 'config\.toml:1([^0-9]|$)'
    is_active fake-metadata.service; eq "$(main_pid)" "$pid"
    v1_iid
}
check "bad config on SIGHUP: keeps serving, journal names config.toml:1" bad_reload
C cp /root/config.toml.orig "$CONF"
C systemctl kill -s HUP --kill-whom=main fake-metadata.service || true

step "stop / start / restart"
stopped() { C systemctl stop fake-metadata.service; eq "$(C systemctl is-active fake-metadata.service || true)" inactive; ! AS_NOBODY curl -fsS --max-time 3 "$IMDS$IID_PATH"; }
check "systemctl stop: inactive, no answer" stopped
started() { C systemctl start fake-metadata.service; is_active fake-metadata.service; v1_iid; }
check "systemctl start: active, IMDSv1 answers" started
restarted() { local a b; a=$(main_pid); C systemctl restart fake-metadata.service; b=$(main_pid); echo "MainPID $a -> $b"; [ "$a" != "$b" ]; v1_iid; }
check "systemctl restart: new MainPID, IMDSv1 answers" restarted

step "intercept unit stop / start"
icpt_stop() { C systemctl stop fake-metadata-intercept.service; no_addr; no_rule; }
check "stop intercept unit: address and rule gone" icpt_stop
icpt_start() { C systemctl start fake-metadata-intercept.service; one_addr; one_rule; v1_iid; }
check "start intercept unit: one address, one rule, answers" icpt_start

step "unit hygiene"
verify_quiet() { local out; out=$(C systemd-analyze verify --man=no "$1" 2>&1) || { echo "$out"; return 1; }; echo "$out"; [ -z "$out" ]; }
check "systemd-analyze verify fake-metadata.service: no output" verify_quiet /lib/systemd/system/fake-metadata.service
check "systemd-analyze verify fake-metadata-intercept.service: no output" verify_quiet /lib/systemd/system/fake-metadata-intercept.service
SCORE=
security_ok() {
    C systemd-analyze security --no-pager fake-metadata.service > "$WORK/security.txt" 2>&1 || true
    SCORE=$(sed -n 's/.*Overall exposure level for fake-metadata.service: *\([0-9.]*\).*/\1/p' "$WORK/security.txt")
    grep 'Overall exposure' "$WORK/security.txt"
    [ -n "$SCORE" ] && awk -v s="$SCORE" 'BEGIN { exit !(s <= 2.0) }'
}
check "systemd-analyze security exposure <= 2.0" security_ok
SCORE=$(sed -n 's/.*Overall exposure level for fake-metadata.service: *\([0-9.]*\).*/\1/p' "$WORK/security.txt")
echo "      systemd-analyze security fake-metadata.service: ${SCORE:-?}"

step "apt-get remove"
check "apt-get remove -y fake-metadata" RUN apt-get remove -y fake-metadata
check "after remove: no address" no_addr
check "after remove: no rule" no_rule
check "after remove: daemon not running" C sh -c '! pgrep -x fake-metadata'

step "apt-get purge"
check "apt-get purge -y fake-metadata" RUN apt-get purge -y fake-metadata
check "after purge: no user fake-metadata, no groups" C sh -c '! getent passwd fake-metadata && ! getent group fake-metadata && ! getent group fake-metadata-ctl'
check "after purge: no /etc/fake-metadata, /var/log/fake-metadata, /var/lib/fake-metadata" \
    C sh -c '! ls -d /etc/fake-metadata /var/log/fake-metadata /var/lib/fake-metadata 2>/dev/null'
check "after purge: no address" no_addr
check "after purge: no rule" no_rule
check "after purge: no container rule (nat PREROUTING, filter INPUT)" no_container_rules
check "after purge: dpkg knows nothing" C sh -c '! dpkg -s fake-metadata >/dev/null 2>&1'

print_times
if [ "$fail" -gt 0 ]; then
    echo "failed: ${FAILED[*]}"
    echo "--- journal of the daemon (last 20 lines) ---"
    C journalctl -u fake-metadata -u fake-metadata-intercept -o short-monotonic --no-pager | tail -20 || true
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
