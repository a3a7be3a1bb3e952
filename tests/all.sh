#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs (apt, pip, cargo tools),
# then runs every tier and prints a summary. CI runs exactly this (`.ci/run`), as root.
#
#   1. lint:        cargo fmt --check, cargo clippy -D warnings
#   2. cargo tests: unit tests, the real server with real peers (aws-config, botocore, curl,
#                   cloud-init's Ec2 crawler),
#                   the real binary, and root tests in fresh network namespaces
#      fuzz:        fuzz/run.sh, a short cargo-fuzz run of each target (fails on a crash)
#   3. package:     packaging/build-deb (cargo-deb + lintian + local apt repository)
#   4. system:      tests/system/nspawn.sh: the .deb installed with apt in a booted systemd
#                   container with its own network namespace
#   5. vagrant:     tests/vagrant/run.sh: a real `vagrant up` of ./Vagrantfile (libvirt, QEMU
#                   TCG, private namespaces), packaging/test-installed.sh in the VM
#
# Under CI=true nothing may be skipped: a tier that cannot run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=never
LOG_DIR=${LOG_DIR:-target/test-logs}
mkdir -p "$LOG_DIR"
START=$SECONDS
declare -a SUMMARY=()
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
            apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || return 1
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

system_tests() {
    tests/system/nspawn.sh target/debian 2>&1 | tee "$LOG_DIR/system.log"
    local rc=${PIPESTATUS[0]}
    grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOG_DIR/system.log" | tail -1 | awk '{ print $1, $3 }' > "$LOG_DIR/system-counts"
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
# libFuzzer on the request core and the config parser, 25 s each (builds with ASan first).
stage "fuzz (respond, config: 25 s each)" fuzz/run.sh 25
if [ -x packaging/build-deb ]; then
    stage "package (.deb, lintian, apt repo)" packaging/build-deb
fi
# Benchmark + soak, quick (< 60 s once built): prints the table and `targets met: N/M`; a
# missed target never fails the run, a broken bench or a failed soak check does.
if [ -x bench/run ]; then
    stage "bench + soak (quick; targets reported, not enforced)" bench/run --quick
fi
if [ -x tests/system/nspawn.sh ]; then
    if is_root; then
        stage "system (apt install in booted systemd)" system_tests
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
SYS_PASSED=0; SYS_FAILED=0
if [ -f "$LOG_DIR/system-counts" ]; then read -r SYS_PASSED SYS_FAILED < "$LOG_DIR/system-counts"; fi
echo
echo "=== summary ($(nproc) cores, $((SECONDS - START)) s in all)"
printf '%s\n' "${SUMMARY[@]}"
echo "cargo tests: $CARGO_PASSED passed, $CARGO_FAILED failed"
echo "system checks: $SYS_PASSED passed, $SYS_FAILED failed"
VAG_PASSED=0; VAG_FAILED=0
if [ -f "$LOG_DIR/vagrant-counts" ]; then read -r VAG_PASSED VAG_FAILED < "$LOG_DIR/vagrant-counts"; fi
echo "vagrant checks: $VAG_PASSED passed, $VAG_FAILED failed"
TOTAL_FAILED=$((CARGO_FAILED + SYS_FAILED + VAG_FAILED + STAGES_FAILED))
echo "total: $((CARGO_PASSED + SYS_PASSED + VAG_PASSED)) passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ]
