# shellcheck shell=bash
# The checks of the scripts tests/vagrant/run.sh runs in the box (containers.sh,
# workloads.sh, views.sh): each prints "ok NAME [seconds]" or "FAIL NAME" with the output it
# hid, and counts into `pass` and `fail` for the script's closing "N passed, N failed".
#
# Source it (bash) after setting WORK (the script's temporary directory):
#   . "$(dirname "$0")/check.sh"

pass=0 fail=0
CHECK_OUT=$WORK/check.out
START=$SECONDS

# Each check runs in a subshell with errexit; its output is shown only on failure.
# Not `out=$( (set -e; ...) ) || rc=$?`: on the left of `||` bash ignores errexit, also in
# that subshell, so only a check's last command could fail it.
check() {
    local name=$1 out rc; shift
    ( set -e; "$@" ) >"$CHECK_OUT" 2>&1
    rc=$?
    out=$(cat "$CHECK_OUT")
    if [ "$rc" = 0 ]; then
        pass=$((pass + 1)); printf 'ok    %s  [%ss]\n' "$name" "$((SECONDS - START))"
    else
        fail=$((fail + 1)); printf 'FAIL  %s (rc=%s)\n' "$name" "$rc"; printf '%s\n' "$out" | sed 's/^/      /'
    fi
}
eq() { [ "$1" = "$2" ] || { echo "expected '$2', got '$1'"; return 1; }; }
ne() { [ "$1" != "$2" ] || { echo "expected something else than '$2'"; return 1; }; }
