#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (apt, pip, cargo tools),
# then runs every tier and prints a summary. CI runs exactly this (`.ci/run`), as root.
#
#   1. lint:        cargo fmt --check, cargo clippy -D warnings
#   2. cargo tests: unit tests, the real server with real peers (aws-config, botocore, curl,
#                   cloud-init's Ec2 crawler),
#                   the real binary, and root tests in fresh network namespaces
#      fuzz:        fuzz/run.sh, a short cargo-fuzz run of each target (fails on a crash)
#   2b. arm64:      the arm64 build under emulation (qemu-user 11): a subset of the cargo
#                   tests (the real server with curl and botocore, the identity signatures
#                   with openssl, the real binary's config checks), cross-compiled and run
#                   with qemu-aarch64 (binfmt_misc for the binary the tests spawn)
#   3. package:     packaging/build-deb (the amd64 and arm64 .debs, arm64 cross-compiled;
#                   cargo-deb, lintian, one local apt repository holding both)
#   4. system:      tests/system/nspawn.sh: the .deb installed with apt in a booted systemd
#                   container with its own network namespace: Debian bookworm and trixie on
#                   amd64, and trixie on arm64 under qemu-user (its iptables native)
#   5. vagrant:     tests/vagrant/run.sh: a real `vagrant up` of ./Vagrantfile (libvirt, QEMU
#                   TCG, private namespaces), packaging/test-installed.sh in the VM
#
# Under CI=true nothing may be skipped: a tier that cannot run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
LIB_NAME=tests/all.sh
# host_install (apt that waits for the dpkg lock), ensure_arm64_toolchain, ensure_arm64_emulation
. tests/system/lib.sh
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=never
LOG_DIR=${LOG_DIR:-target/test-logs}
# Both packages, amd64 and arm64 (issue 18).
DEB_ARCH=all DEB_ARCHES=(amd64 arm64)
mkdir -p "$LOG_DIR"
START=$SECONDS
declare -a SUMMARY=()
# Without root (and not in CI) the arm64 package only when its cross toolchain is already
# there: build-deb installs it as root.
if [ "$(id -u)" != 0 ] && [ "${CI:-}" != true ] && ! { command -v aarch64-linux-gnu-gcc >/dev/null &&
    rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; }; then
    DEB_ARCH=amd64 DEB_ARCHES=(amd64)
    SUMMARY+=("skip  arm64 package: not root and no arm64 cross toolchain (rustup target aarch64-unknown-linux-gnu, apt gcc-aarch64-linux-gnu)")
fi
STAGES_FAILED=0

stage() {
    local name=$1; shift
    local t=$SECONDS
    echo "=== $name"
    if "$@"; then
        SUMMARY+=("ok    $name ($((SECONDS - t)) s)")
    else
        SUMMARY+=("FAIL  $name ($((SECONDS - t)) s)")
        STAGES_FAILED=$((STAGES_FAILED + 1))
    fi
}

is_root() { [ "$(id -u)" = 0 ]; }

install_deps() {
    if ! is_root; then
        if [ "${CI:-}" = true ]; then echo "CI must run as root"; return 1; fi
        echo "not root: skipping apt installs (root tests will say they are skipped)"
    else
        local pkgs=(iptables nftables curl iproute2 ca-certificates)
        local missing=()
        for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
        if [ ${#missing[@]} -gt 0 ]; then
            apt_get update -qq && apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || return 1
        fi
    fi
    # Real AWS clients as test peers (botocore = boto3's engine; awscli drives it).
    python3 -c 'import botocore, awscli' 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check 'botocore>=1.34' 'awscli>=1.32' || return 1
    # cloud-init's Ec2 datasource code as a peer (tests/cloud_init.rs): Debian's package,
    # unpacked into target/, not installed (installing it would enable its boot services).
    if [ ! -d target/cloud-init/usr/lib/python3/dist-packages/cloudinit ]; then
        local d; d=$(mktemp -d)
        (cd "$d" && { apt-get download -qq cloud-init 2>/dev/null ||
            { apt-get update -qq && apt-get download -qq cloud-init; }; }) &&
            dpkg -x "$d"/cloud-init_*.deb target/cloud-init || return 1
        rm -rf "$d"
    fi
    python3 -c 'import configobj, yaml, requests, jinja2, jsonschema' 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check configobj pyyaml requests jinja2 jsonschema || return 1
    rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
}

lint() {
    cargo fmt --check && cargo clippy --locked --all-targets -q -- -D warnings
}

cargo_tests() {
    cargo test --locked --all-targets --no-fail-fast 2>&1 | tee "$LOG_DIR/cargo-test.log"
    local rc=${PIPESTATUS[0]}
    # The cargo totals, for the summary.
    awk '/^test result:/ { p += $4; f += $6 } END { printf "%d %d\n", p, f }' "$LOG_DIR/cargo-test.log" > "$LOG_DIR/cargo-counts"
    return "$rc"
}

# cargo-deny: licenses, duplicate crates and sources of the dependency tree (deny.toml).
# The RustSec advisory database is a git repository on a host these machines cannot reach,
# and no reachable registry packages it: advisories are checked (--offline) only against a
# database already on disk where cargo-deny keeps it, and the summary says which it was.
DENY_VERSION=0.20.2
deny_check() {
    if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $DENY_VERSION" ]; then
        cargo install --locked --quiet cargo-deny --version "$DENY_VERSION" || return 1
    fi
    cargo deny --locked check licenses bans sources || return 1
    local dbs=("${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/*/.git)
    if [ -e "${dbs[0]}" ]; then
        SUMMARY+=("note  advisories: checked against the database on disk, $(dirname "${dbs[0]}") (not updated)")
        cargo deny --locked --offline check advisories
    else
        SUMMARY+=("note  advisories: NOT checked: no RustSec database here (its git host is unreachable and no reachable registry packages it)")
    fi
}

# The arm64 toolchain (rustup target, cross gcc) and emulator (qemu-user 11, binfmt_misc).
# Each says what it could not install; under CI=true, as everywhere, a failure fails the run.
arm64_deps() { ensure_arm64_toolchain && ensure_arm64_emulation; }

# The same contract and client tests as natively, on the arm64 build run under qemu-user:
# the test binaries run under qemu-aarch64 (cargo's runner), the daemon binary they
# spawn (CARGO_BIN_EXE_fake-metadata) through binfmt_misc; curl, botocore (Python) and
# openssl are the host's own. QEMU_LD_PREFIX points both at the cross sysroot's libc; the
# tests' waits for a daemon are 8 times as long (a debug daemon's first RSA key under
# emulation takes tens of seconds).
ARM64_TESTS=(--test curl --test botocore --test identity --test cli)
arm64_cargo_tests() {
    : > "$LOG_DIR/arm64-counts"
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64 \
    QEMU_LD_PREFIX=/usr/aarch64-linux-gnu FAKE_METADATA_TEST_SLOWDOWN=8 \
        cargo test --locked --target aarch64-unknown-linux-gnu --no-fail-fast "${ARM64_TESTS[@]}" 2>&1 |
        tee "$LOG_DIR/arm64-cargo-test.log"
    local rc=${PIPESTATUS[0]}
    awk '/^test result:/ { p += $4; f += $6 } END { printf "%d %d\n", p, f }' "$LOG_DIR/arm64-cargo-test.log" > "$LOG_DIR/arm64-counts"
    # What ran under emulation: the test binaries' file types.
    grep -E '^ +Running ' "$LOG_DIR/arm64-cargo-test.log" | sed 's/^ *Running //; s/ (.*//' | sort -u
    return "$rc"
}

# Both packages built, each for its architecture, both in the apt repository's index.
package_checks() {
    local a deb ok=0
    for a in "${DEB_ARCHES[@]}"; do
        deb=$(ls -t target/debian/fake-metadata_*_"$a".deb 2>/dev/null | head -1)
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
package() { packaging/build-deb --arch "$DEB_ARCH" && package_checks; }

# system_tests SUITE ARCH: tests/system/nspawn.sh in a Debian SUITE/ARCH container.
SYSTEM_TIERS=()
system_tests() {
    local suite=$1 arch=$2 log=$LOG_DIR/system-$1-$2.log
    SYSTEM_TIERS+=("$suite-$arch")
    : > "$LOG_DIR/system-$suite-$arch-counts"
    SUITE=$suite ARCH=$arch tests/system/nspawn.sh target/debian 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 | awk '{ print $1, $3 }' > "$LOG_DIR/system-$suite-$arch-counts"
    return "$rc"
}

vagrant_tests() {
    tests/vagrant/run.sh target/debian 2>&1 | tee "$LOG_DIR/vagrant.log"
    local rc=${PIPESTATUS[0]}
    grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG_DIR/vagrant.log" | tail -1 | awk '{ print $1, $3 }' > "$LOG_DIR/vagrant-counts"
    return "$rc"
}

stage "dependencies" install_deps
stage "lint (fmt, clippy)" lint
stage "deny (licenses, bans, sources; advisories if a database is on disk)" deny_check
stage "cargo tests (unit, peers, binary, netns)" cargo_tests
ARM64_T0=$SECONDS
if is_root; then
    stage "arm64 toolchain and emulator (rustup target, cross gcc, qemu-user 11, binfmt_misc)" arm64_deps
    stage "arm64 cargo tests under qemu-user (${ARM64_TESTS[*]})" arm64_cargo_tests
elif [ "${CI:-}" = true ]; then
    SUMMARY+=("FAIL  arm64: needs root (apt, binfmt_misc)"); STAGES_FAILED=$((STAGES_FAILED + 1))
else
    SUMMARY+=("skip  arm64: needs root (apt, binfmt_misc)")
fi
ARM64_SECS=$((SECONDS - ARM64_T0))
# libFuzzer on the request core and the config parser, 25 s each (builds with ASan first).
stage "fuzz (respond, config: 25 s each)" fuzz/run.sh 25
if [ -x packaging/build-deb ]; then
    stage "package (${DEB_ARCHES[*]} .debs, lintian, apt repo)" package
fi
# Benchmark + soak, quick (< 60 s once built): prints the table and `targets met: N/M`; a
# missed target never fails the run, a broken bench or a failed soak check does.
if [ -x bench/run ]; then
    stage "bench + soak (quick; targets reported, not enforced)" bench/run --quick
fi
if [ -x tests/system/nspawn.sh ]; then
    if is_root; then
        stage "system bookworm/amd64 (apt install in booted systemd)" system_tests bookworm amd64
        stage "system trixie/amd64 (apt install in booted systemd)" system_tests trixie amd64
        t=$SECONDS
        stage "system trixie/arm64 (booted systemd under qemu-user; its iptables native)" system_tests trixie arm64
        ARM64_SECS=$((ARM64_SECS + SECONDS - t))
    elif [ "${CI:-}" = true ]; then
        SUMMARY+=("FAIL  system: needs root"); STAGES_FAILED=$((STAGES_FAILED + 1))
    else
        SUMMARY+=("skip  system: needs root")
    fi
fi

if [ -x tests/vagrant/run.sh ]; then
    if is_root; then
        stage "vagrant (vagrant up of ./Vagrantfile, test-installed.sh in the VM)" vagrant_tests
    elif [ "${CI:-}" = true ]; then
        SUMMARY+=("FAIL  vagrant: needs root"); STAGES_FAILED=$((STAGES_FAILED + 1))
    else
        SUMMARY+=("skip  vagrant: needs root")
    fi
fi

read -r CARGO_PASSED CARGO_FAILED < "$LOG_DIR/cargo-counts" 2>/dev/null || { CARGO_PASSED=0; CARGO_FAILED=0; }
ARM_PASSED=0; ARM_FAILED=0
if [ -s "$LOG_DIR/arm64-counts" ]; then read -r ARM_PASSED ARM_FAILED < "$LOG_DIR/arm64-counts"; fi
echo
echo "=== summary ($(nproc) cores, $((SECONDS - START)) s in all)"
printf '%s\n' "${SUMMARY[@]}"
echo "cargo tests: $CARGO_PASSED passed, $CARGO_FAILED failed"
echo "arm64 cargo tests under qemu-user (${ARM64_TESTS[*]}): $ARM_PASSED passed, $ARM_FAILED failed"
echo "arm64 tiers (toolchain + emulator, cargo tests, booted trixie/arm64): ${ARM64_SECS:-0} s (the arm64 package's cross build is in the package stage)"
SYS_PASSED=0; SYS_FAILED=0
for t in "${SYSTEM_TIERS[@]}"; do
    p=0 f=0
    if [ -s "$LOG_DIR/system-$t-counts" ]; then read -r p f < "$LOG_DIR/system-$t-counts"; fi
    echo "system checks ${t/-//}: $p passed, $f failed"
    # The emulated tier's checks, one by one (the others are in their logs).
    [ "$t" != trixie-arm64 ] || grep -E '^(ok|FAIL)  ' "$LOG_DIR/system-$t.log" | sed 's/^/    /'
    SYS_PASSED=$((SYS_PASSED + p)); SYS_FAILED=$((SYS_FAILED + f))
done
VAG_PASSED=0; VAG_FAILED=0
if [ -f "$LOG_DIR/vagrant-counts" ]; then read -r VAG_PASSED VAG_FAILED < "$LOG_DIR/vagrant-counts"; fi
echo "vagrant checks: $VAG_PASSED passed, $VAG_FAILED failed"
TOTAL_FAILED=$((CARGO_FAILED + ARM_FAILED + SYS_FAILED + VAG_FAILED + STAGES_FAILED))
echo "total: $((CARGO_PASSED + ARM_PASSED + SYS_PASSED + VAG_PASSED)) passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]
