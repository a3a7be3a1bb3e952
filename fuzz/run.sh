#!/usr/bin/env bash
# A short fuzz run of every target, for the test command: builds the targets with libFuzzer's
# coverage instrumentation, runs each for SECONDS (default 25) on the committed corpus, and
# fails on a crash (a panic is a crash), a timeout or an out-of-memory.
#
#   fuzz/run.sh [SECONDS]                 coverage only: plain `cargo build`, no extra tools
#   FUZZ_ASAN=1 fuzz/run.sh [SECONDS]     with AddressSanitizer, through cargo-fuzz (installs it)
#
# The default needs neither cargo-fuzz (5 min to install) nor a sanitizer build (6 min more):
# the code is safe Rust, where the bugs to find are panics, which need no sanitizer. The long
# documented runs (fuzz/README.md) use cargo-fuzz with ASan.
#
# New inputs found are kept in a scratch corpus (not the committed one), so a run leaves the
# work tree as it was. A crash leaves its input in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-25}
TARGETS=(respond config snapshot)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p artifacts

if [ "${FUZZ_ASAN:-0}" = 1 ]; then
    # cargo-fuzz passes nightly `-Z` flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
    export RUSTC_BOOTSTRAP=1
    cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
    cargo fuzz build -O
    bin() { echo "target/x86_64-unknown-linux-gnu/release/$1"; }
else
    # The instrumentation cargo-fuzz adds, minus the sanitizer. An explicit --target keeps
    # these flags off build scripts and proc macros.
    export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
    cargo build --release --locked --bins --target x86_64-unknown-linux-gnu --target-dir target/plain -q
    bin() { echo "target/plain/x86_64-unknown-linux-gnu/release/$1"; }
fi

status=0
for target in "${TARGETS[@]}"; do
    mkdir -p "$scratch/$target" "artifacts/$target"
    echo "--- fuzz $target for ${SECONDS_PER_TARGET}s"
    # The first corpus directory receives new inputs; the committed one is only read.
    if "$(bin "$target")" "$scratch/$target" "corpus/$target" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$scratch/$target.log" 2>&1; then
        grep -E '^(#[0-9]+\s+DONE|Done [0-9]+ runs|stat::number_of_executed_units)' "$scratch/$target.log" | tail -2
    else
        status=1
        echo "FAIL: fuzz target $target"
        grep -v '^#' "$scratch/$target.log" | tail -60
    fi
done
exit $status
