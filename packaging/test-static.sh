#!/bin/bash
# Check the static release tarballs of packaging/build-release: that each binary needs nothing
# of the machine it runs on. For x86_64 and aarch64:
#   - SHA256SUMS matches, and the tarball holds one folder with the binary, man page,
#     completions, README.md and LICENSE;
#   - `file` says the binary is statically linked for its architecture (x86_64: static-pie,
#     which `file` calls "static-pie linked"), and it has no program interpreter and no
#     shared-library dependency (readelf);
#   - in an empty root (chroot into a directory holding only the binary: no libc, no /etc,
#     no /proc, no /dev) it prints `--version`, takes a `snapshot` of a local daemon (the
#     normal glibc build, `serve` on a free 127.0.0.1 port outside the chroot) into that
#     root, and `check-config`s it; the snapshot is a valid config for the normal build too
#     and holds the daemon's instance id. aarch64 runs under qemu-user through binfmt_misc's
#     F flag (ensure_arm64_emulation: qemu-user 11 from Debian trixie-backports), so nothing
#     but the binary is in its root either.
#
# Usage (root): packaging/test-static.sh [ARTIFACTS_DIR]   (default target/release-artifacts)
# Env: DAEMON  the fake-metadata that serves (default target/release/fake-metadata, else
#              target/debug/fake-metadata)
# Traffic goes only to 127.0.0.1; the daemon is stopped by its PID. Every check prints ok or
# FAIL; the last line is "N passed, N failed"; the exit status is 1 if any failed. When it
# cannot run (not root, no emulator) it says so and exits 0, except under CI=true, where that
# is a failure.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB_NAME=test-static.sh
# shellcheck source-path=SCRIPTDIR source=../tests/system/lib.sh
. "$ROOT/tests/system/lib.sh"
cd "$ROOT"
ART=$(realpath -m "${1:-target/release-artifacts}")
VERSION=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
ARCHES=(x86_64 aarch64)

pass=0 fail=0
WORK=$(mktemp -d /tmp/fake-metadata-static.XXXXXX)
LAST=$WORK/last.out
DAEMON_PID=
cleanup() {
    if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Each check runs in a subshell with errexit, its output shown only on failure.
check() {
    local name=$1 rc; shift
    ( set -e; "$@" ) >"$LAST" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
        pass=$((pass + 1)); printf 'ok    %s\n' "$name"
        sed -n 's/^INFO: /      /p' "$LAST"
    else
        fail=$((fail + 1)); printf 'FAIL  %s\n' "$name"
        sed 's/^/      | /' "$LAST" | tail -20
    fi
}
summary() { echo "$pass passed, $fail failed"; return $((fail > 0)); }
# The test cannot run here: a failure under CI, else a skip.
cannot_run() {
    if [ "${CI:-}" = true ]; then
        fail=$((fail + 1)); printf 'FAIL  %s (CI=true: nothing may be skipped)\n' "$*"
    else
        printf 'skip  %s\n' "$*"
    fi
    summary
}
info() { echo "INFO: $*"; }

[ "$(id -u)" = 0 ] || { cannot_run "needs root (chroot, binfmt_misc)"; exit; }
[ -n "$VERSION" ] || { echo "test-static.sh: no version in Cargo.toml" >&2; exit 2; }
if [ -z "${DAEMON:-}" ]; then
    for d in target/release/fake-metadata target/debug/fake-metadata; do
        if [ -x "$d" ]; then DAEMON=$ROOT/$d; break; fi
    done
fi
if [ -z "${DAEMON:-}" ] || [ ! -x "$DAEMON" ]; then
    cannot_run "no daemon to snapshot: cargo build --release (or set DAEMON=PATH)"; exit
fi
host_install file binutils curl python3 ||
    { cannot_run "cannot install file, binutils (readelf), curl, python3"; exit; }
ensure_arm64_emulation || { cannot_run "no arm64 emulation (qemu-user 11 with binfmt_misc's F flag)"; exit; }

name_of() { echo "fake-metadata-$VERSION-$1-unknown-linux-musl"; }

echo "--- artifacts in $ART (version $VERSION); daemon $DAEMON"
sums_match() {
    local a
    cd "$ART"
    for a in "${ARCHES[@]}"; do
        grep -q " $(name_of "$a").tar.gz\$" SHA256SUMS ||
            { echo "SHA256SUMS does not list the $a tarball:"; cat SHA256SUMS; return 1; }
    done
    sha256sum -c SHA256SUMS
}
check "SHA256SUMS lists both tarballs and matches them" sums_match

# tarball_layout ARCH: one top folder NAME/ holding exactly what a user needs.
tarball_layout() {
    local name got want
    name=$(name_of "$1")
    got=$(tar -tzf "$ART/$name.tar.gz" | sed 's|/$||' | sort)
    want=$(printf '%s\n' "$name" "$name/LICENSE" "$name/README.md" "$name/completions" \
        "$name/completions/_fake-metadata" "$name/completions/fake-metadata" \
        "$name/completions/fake-metadata.fish" "$name/fake-metadata" "$name/fake-metadata.8.gz" | sort)
    [ "$got" = "$want" ] || { echo "tarball holds:"; echo "$got"; echo "expected:"; echo "$want"; return 1; }
    [ -x "$WORK/x/$name/fake-metadata" ]
    grep -q 'Apache License' "$WORK/x/$name/LICENSE"
    zcat "$WORK/x/$name/fake-metadata.8.gz" | grep -q '^\.TH'
    grep -q 'complete' "$WORK/x/$name/completions/fake-metadata"
}

# statically_linked ARCH FILE_ARCH: `file`'s verdict, and readelf's: no interpreter, no
# shared library.
statically_linked() {
    local bin f
    bin=$WORK/x/$(name_of "$1")/fake-metadata
    f=$(file -b "$bin")
    info "file: $f"
    case $f in *"$2"*) ;; *) echo "not an $2 binary"; return 1 ;; esac
    case $f in *"statically linked"*|*"static-pie linked"*) ;; *) echo "not statically linked"; return 1 ;; esac
    if readelf -lW "$bin" | grep -q INTERP; then echo "has a program interpreter:"; readelf -lW "$bin" | grep -A1 INTERP; return 1; fi
    if readelf -dW "$bin" | grep -q NEEDED; then echo "needs shared libraries:"; readelf -dW "$bin" | grep NEEDED; return 1; fi
}

# An empty root holding only the binary.
empty_root() {
    local r=$WORK/root-$1
    rm -rf "$r"; mkdir -p "$r"
    cp "$WORK/x/$(name_of "$1")/fake-metadata" "$r/fake-metadata"
    echo "$r"
}

chroot_version() {
    local r out
    r=$(empty_root "$1")
    [ "$(ls -A "$r")" = fake-metadata ] || { echo "the root holds more than the binary: $(ls -A "$r")"; return 1; }
    out=$(chroot "$r" /fake-metadata --version)
    info "$out"
    [ "$out" = "fake-metadata $VERSION" ] || { echo "expected 'fake-metadata $VERSION'"; return 1; }
}

# chroot_snapshot ARCH: crawl the local daemon from the empty root into /instance.toml there.
chroot_snapshot() {
    local r id
    r=$(empty_root "$1")
    chroot "$r" /fake-metadata snapshot --endpoint "http://127.0.0.1:$PORT" --timeout 20 -o /instance.toml
    [ -s "$r/instance.toml" ] || { echo "no /instance.toml in the root"; ls -la "$r"; return 1; }
    info "$(wc -c < "$r/instance.toml") bytes; root now holds: $(cd "$r" && echo *)"
    # Its own check-config, still in the empty root, and the normal build's.
    chroot "$r" /fake-metadata check-config /instance.toml
    "$DAEMON" check-config "$r/instance.toml"
    id=$(curl -fsS --noproxy '*' --max-time 5 "http://127.0.0.1:$PORT/latest/meta-data/instance-id")
    grep -qF "$id" "$r/instance.toml" || { echo "the snapshot lacks the daemon's instance id $id"; return 1; }
    ! grep -nE '^[[:space:]]*partial[[:space:]]*=' "$r/instance.toml" || { echo "the snapshot is marked partial"; return 1; }
}

# The normal build serves on a free loopback port, with a state directory and no control
# socket of its own.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# A root start serves as the package user or nobody: it must reach its state directory.
chmod 755 "$WORK"
mkdir -p "$WORK/state"
printf '[server]\nstate-directory = "%s"\n[control]\nenabled = false\n' "$WORK/state" > "$WORK/serve.toml"
"$DAEMON" serve --config "$WORK/serve.toml" --listen "127.0.0.1:$PORT" > "$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
daemon_up() {
    local i
    for i in $(seq 150); do
        curl -fsS --noproxy '*' --max-time 2 -o /dev/null "http://127.0.0.1:$PORT/latest/meta-data/" && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || { echo "the daemon exited:"; cat "$WORK/daemon.log"; return 1; }
        [ "$i" -lt 150 ] && sleep 0.2
    done
    echo "no answer on 127.0.0.1:$PORT in 30 s"; cat "$WORK/daemon.log"; return 1
}
check "the normal build serves on 127.0.0.1:$PORT (pid $DAEMON_PID)" daemon_up

for arch in "${ARCHES[@]}"; do
    echo "--- $arch"
    if [ ! -f "$ART/$(name_of "$arch").tar.gz" ]; then
        check "$arch: $(name_of "$arch").tar.gz exists (packaging/build-release)" false
        continue
    fi
    # Unpacked once; the checks below read the unpacked files.
    mkdir -p "$WORK/x"
    tar -C "$WORK/x" -xzf "$ART/$(name_of "$arch").tar.gz" || echo "cannot unpack $(name_of "$arch").tar.gz"
    case $arch in x86_64) fa=x86-64 ;; aarch64) fa="ARM aarch64" ;; esac
    check "$arch: the tarball holds $(name_of "$arch")/ with binary, man page, completions, README, LICENSE" tarball_layout "$arch"
    check "$arch: statically linked (file; no interpreter, no NEEDED)" statically_linked "$arch" "$fa"
    under=""
    [ "$arch" = aarch64 ] && under=" under qemu-user (binfmt_misc F)"
    check "$arch: --version in an empty root$under" chroot_version "$arch"
    check "$arch: snapshot of the daemon from an empty root$under, a valid config" chroot_snapshot "$arch"
done
summary
