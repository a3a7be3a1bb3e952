# shellcheck shell=bash
# Shared shell code of the system tiers (tests/system/nspawn.sh for amd64/arm64 x
# bookworm/trixie, tests/vagrant/run.sh) and of packaging/build-deb: timed steps, apt that
# waits for the dpkg lock, host tools, Debian mirrors, arm64 emulation (qemu-user 11 +
# binfmt_misc), one systemd-nspawn at a time, and a cached mmdebstrap root.
#
# Source it (bash):  . "$(dirname "$0")/../system/lib.sh"
# The caller sets LIB_NAME (its name in messages) and may set errexit; nothing here changes
# the caller's shell options. Nothing here touches the host's network configuration.

LIB_NAME=${LIB_NAME:-$(basename "$0")}
LIB_T0=${LIB_T0:-$(date +%s.%N)}
LIB_TSTEP=$LIB_T0
LIB_STEP_NAME=
# "  12.3s  name" for each finished step, for a closing timings table.
LIB_TIMES=()

step() {
    local now; now=$(date +%s.%N)
    if [ -n "$LIB_STEP_NAME" ]; then
        LIB_TIMES+=("$(awk -v a="$now" -v c="$LIB_TSTEP" -v m="$LIB_STEP_NAME" 'BEGIN { printf "%6.1fs  %s", a - c, m }')")
    fi
    awk -v a="$now" -v b="$LIB_T0" -v c="$LIB_TSTEP" -v m="$*" 'BEGIN { printf "[%6.1fs total, %5.1fs prev step] %s\n", a - b, a - c, m }'
    LIB_TSTEP=$now
    LIB_STEP_NAME=$*
}
print_times() {
    step "done"
    printf '%s\n' "${LIB_TIMES[@]}"
    awk -v a="$(date +%s.%N)" -v b="$LIB_T0" 'BEGIN { printf "%6.1fs  total\n", a - b }'
}
die() { echo "$LIB_NAME: $*" >&2; exit 2; }

# apt-get that waits (up to 5 min) for the dpkg lock instead of failing at once: another
# apt on the machine (unattended-upgrades on a fresh box, another job) may hold it. As root,
# our own apt-gets also queue on a lock of their own first (tests/all.sh runs some tiers side
# by side): `apt-get update` does not wait for its lists lock, it fails.
LIB_APT_LOCK=/run/lock/fake-metadata-apt.lock
apt_get() {
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive flock -w 1800 "$LIB_APT_LOCK" apt-get -o DPkg::Lock::Timeout=300 "$@"
    else
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"
    fi
}
LIB_APT_UPDATED=0
# missing_packages PKG...: prints each PKG that is not installed (NAME=VERSION: not at that
# version), one a line.
missing_packages() {
    local p
    for p in "$@"; do
        if [[ $p == *=* ]]; then
            [ "$(dpkg-query -W -f='${Version}' "${p%%=*}" 2>/dev/null || true)" = "${p#*=}" ] || echo "$p"
        else
            dpkg -s "$p" >/dev/null 2>&1 || echo "$p"
        fi
    done
}
# host_install PKG...: install the Debian packages that are not installed yet (apt-get
# update first, once, when something is missing). PKG may be NAME=VERSION. It writes
# nothing on stdout (its notice and apt's go to stderr), so a helper that returns a value on
# stdout can call it.
host_install() {
    local need=()
    mapfile -t need < <(missing_packages "$@")
    [ ${#need[@]} -gt 0 ] || return 0
    echo "apt-get install ${need[*]}" >&2
    if [ "$LIB_APT_UPDATED" = 0 ]; then apt_get update -qq >&2 || return 1; LIB_APT_UPDATED=1; fi
    apt_get install -y -qq --no-install-recommends --allow-downgrades "${need[@]}" >/dev/null
}

# ---------------------------------------------------------------- mirrors
# First URI of a source (one-line or deb822 format) that carries SUITE.
mirror_for() {
    local suite=$1
    {
        cat /etc/apt/sources.list 2>/dev/null || true
        for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && cat "$f"; done
    } | awk -v s="$suite" '$1=="deb" { u=""; for (i=2;i<=NF;i++) { if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; continue } if (u=="") { u=$i; continue } if ($i==s) { print u; exit } } }'
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$suite" 'BEGIN{RS=""} {
            uri=""; ok=0; n=split($0, L, "\n")
            for (i=1;i<=n;i++) {
                if (L[i] ~ /^URIs:/) { split(L[i], a, /[ \t]+/); uri=a[2] }
                if (L[i] ~ /^Suites:/) { m=split(L[i], b, /[ \t]+/); for (j=2;j<=m;j++) if (b[j]==s) ok=1 }
            }
            if (ok && uri!="") print uri }' "$f"
    done
}
# resolve_mirrors SUITE: sets and exports MIRROR and SECURITY_MIRROR (unless already set).
# A suite the host does not use (trixie on a bookworm host) comes from the same mirror as
# the host's own release: one Debian mirror serves every suite.
resolve_mirrors() {
    local suite=$1 host
    host=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    MIRROR=${MIRROR:-$(mirror_for "$suite" | head -1)}
    [ -n "$MIRROR" ] || [ -z "$host" ] || MIRROR=$(mirror_for "$host" | head -1)
    SECURITY_MIRROR=${SECURITY_MIRROR:-$(mirror_for "$suite-security" | head -1)}
    [ -n "$SECURITY_MIRROR" ] || [ -z "$host" ] || SECURITY_MIRROR=$(mirror_for "$host-security" | head -1)
    [ -n "$MIRROR" ] || die "cannot find a Debian mirror for $suite in /etc/apt/sources.list*; set MIRROR"
    [ -n "$SECURITY_MIRROR" ] || SECURITY_MIRROR=${MIRROR%/debian}/debian-security
    export MIRROR SECURITY_MIRROR
}

# ---------------------------------------------------------------- arm64 emulation
# The arm64 toolchain for a cross build: Rust's standard library for the target and
# Debian's cross linker and sysroot. Fails naming what could not be installed.
ensure_arm64_toolchain() {
    rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
        rustup target add aarch64-unknown-linux-gnu ||
        { echo "$LIB_NAME: cannot install the Rust target aarch64-unknown-linux-gnu (rustup target add)" >&2; return 1; }
    host_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross ||
        { echo "$LIB_NAME: cannot install the arm64 cross linker (apt: gcc-aarch64-linux-gnu libc6-dev-arm64-cross)" >&2; return 1; }
}
# arm64 programs run under qemu-user through binfmt_misc, registered with the F (fix-binary)
# flag so that the emulator works inside containers and chroots too. (arm64 programs of the
# cross build, run on this amd64 host, also need QEMU_LD_PREFIX=/usr/aarch64-linux-gnu, the
# cross sysroot, to find their loader and libc.)
#
# It must be qemu-user 11 or later. glibc's pidfd_spawn, without clone3 (which qemu-user does
# not emulate: ENOSYS), falls back to clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD), and qemu-user
# before 11 (bookworm's 7.2, 10.0 of bookworm-backports and trixie) refuses CLONE_PIDFD there
# with EINVAL. systemd 257 (trixie) starts every unit with pidfd_spawn, so under an older
# qemu every unit of a booted arm64 trixie fails: "Failed to spawn executor: Invalid
# argument", Result: resources. Debian's trixie-backports has qemu-user 11.1; the package is
# static (no dependencies) and installs on bookworm too. apt installs it from a sources list
# of its own (the host's apt sources stay as they are), and the package's own binfmt.d entry
# is registered (flags OPF, interpreter /usr/bin/qemu-aarch64).
QEMU_USER_MIN=1:11
QEMU_USER_SUITE=trixie-backports
QEMU_APT_DIR=/var/cache/fake-metadata-ci/apt-$QEMU_USER_SUITE
qemu_user_new_enough() {
    local v; v=$(dpkg-query -W -f='${Version}' qemu-user 2>/dev/null || true)
    [ -n "$v" ] && dpkg --compare-versions "$v" ge "$QEMU_USER_MIN"
}
install_qemu_user() {
    local host m p d=$QEMU_APT_DIR
    host=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    m=$(mirror_for "$host" | head -1)
    mkdir -p "$d/lists/partial" "$d/archives/partial" || return 1
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${m:-http://deb.debian.org/debian} $QEMU_USER_SUITE main" > "$d/sources.list"
    local opts=(-o "Dir::Etc::sourcelist=$d/sources.list" -o Dir::Etc::sourceparts=-
        -o "Dir::State::lists=$d/lists" -o "Dir::Cache::archives=$d/archives" -o APT::Sandbox::User=root)
    echo "apt-get install qemu-user/$QEMU_USER_SUITE (qemu-user $QEMU_USER_MIN or later)" >&2
    apt_get "${opts[@]}" update -qq >&2 || return 1
    # The registration packages of an older qemu (qemu-user-static, qemu-user-binfmt) depend
    # on exactly their qemu-user: they go (the registration is done below instead).
    for p in qemu-user-static qemu-user-binfmt; do
        if dpkg -s "$p" >/dev/null 2>&1; then apt_get purge -y -qq "$p" >/dev/null || return 1; fi
    done
    apt_get "${opts[@]}" install -y -qq --no-install-recommends "qemu-user/$QEMU_USER_SUITE" >/dev/null
}
ensure_arm64_emulation() {
    local fresh=0 e=/proc/sys/fs/binfmt_misc/qemu-aarch64 conf=/usr/share/qemu/binfmt.d/qemu-aarch64.conf
    if ! qemu_user_new_enough; then
        if ! { install_qemu_user && qemu_user_new_enough; }; then
            echo "$LIB_NAME: cannot install the emulator qemu-user $QEMU_USER_MIN or later (apt: qemu-user from Debian $QEMU_USER_SUITE)" >&2
            return 1
        fi
        fresh=1
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
            { echo "$LIB_NAME: cannot mount binfmt_misc (needed to run arm64 programs under qemu-user)" >&2; return 1; }
    fi
    # F opens the interpreter when it is registered: after an install, or when another
    # emulator is registered, register again.
    if [ "$fresh" = 1 ] || ! grep -qx enabled "$e" 2>/dev/null || ! grep -qx 'interpreter /usr/bin/qemu-aarch64' "$e"; then
        [ -f "$conf" ] || { echo "$LIB_NAME: no $conf (qemu-user $QEMU_USER_MIN or later ships it)" >&2; return 1; }
        if [ -e "$e" ]; then echo -1 > "$e" || return 1; fi
        cat "$conf" > /proc/sys/fs/binfmt_misc/register ||
            { echo "$LIB_NAME: cannot register qemu-aarch64 in binfmt_misc ($conf)" >&2; return 1; }
    fi
    grep -q '^flags: .*F' "$e" ||
        { echo "$LIB_NAME: qemu-aarch64 is registered without the F flag: arm64 containers cannot use it" >&2; return 1; }
}

# ---------------------------------------------------------------- systemd-nspawn
# On a host whose PID 1 is not systemd, nspawn --keep-unit uses /payload and /supervisor at
# the root of the cgroup hierarchies: one container at a time on the machine. Wait (up to
# 60 min) for another one (another tier, another job) to finish.
wait_for_no_nspawn() {
    local i
    for i in $(seq 720); do
        pgrep -x systemd-nspawn >/dev/null || return 0
        [ "$i" = 1 ] && echo "another systemd-nspawn is running; waiting (up to 60 min)"
        sleep 5
    done
    die "systemd-nspawn still running after 60 min"
}

# rootfs_tarball SUITE ARCH PKGS CACHE_DIR [MORE_ARCHES]: prints the path of a cached,
# zstd-compressed minbase root (mmdebstrap) with PKGS (comma-separated; NAME:ARCH for a
# package of one of MORE_ARCHES, e.g. amd64), building it first if needed. A foreign ARCH runs
# its maintainer scripts under qemu-user (ensure_arm64_emulation).
# Pure file-system work: nothing of ours is installed and nothing touches the network
# configuration (mmdebstrap's chroot runs only Debian's own maintainer scripts).
rootfs_tarball() {
    local suite=$1 arch=$2 pkgs=$3 cache=$4 arches=$2${5:+,$5} recipe key tarball
    resolve_mirrors "$suite"
    recipe="v2 $suite $arches minbase $pkgs $MIRROR $SECURITY_MIRROR"
    key=$(echo "$recipe" | sha256sum | cut -c1-16)
    tarball=$cache/rootfs-$suite-$arch-$key.tar.zst
    # Everything but the path goes to stderr: the caller reads stdout as the path. One build
    # of a root at a time (a lock beside it): a run waits for the one `nspawn.sh --rootfs-only`
    # is making (tests/all.sh starts those early).
    mkdir -p "$cache" || return 1
    (
    flock 9
    if [ ! -s "$tarball" ]; then
        host_install mmdebstrap zstd || exit 1
        # mmdebstrap checks that a foreign architecture can run with arch-test.
        [ "$arch" = "$(dpkg --print-architecture)" ] || host_install arch-test || exit 1
        echo "rootfs: mmdebstrap $suite/$arch -> $tarball"
        mmdebstrap -q --variant=minbase --architectures="$arches" --include="$pkgs" \
            --customize-hook='echo fmci > "$1/etc/hostname"' \
            --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 fmci\n::1 localhost\n" > "$1/etc/hosts"' \
            --customize-hook='rm -f "$1/etc/resolv.conf"' \
            --customize-hook='chroot "$1" systemctl mask systemd-firstboot.service console-getty.service >/dev/null 2>&1 || true' \
            "$suite" "$tarball.tmp.tar" \
            "deb $MIRROR $suite main" "deb $SECURITY_MIRROR $suite-security main" </dev/null || exit 1
        zstd -q -T0 --rm -f "$tarball.tmp.tar" -o "$tarball.tmp" && mv "$tarball.tmp" "$tarball" || exit 1
    else
        echo "rootfs: cached $tarball"
    fi
    ) 9>"$tarball.lock" >&2 || return 1
    echo "$tarball"
}
