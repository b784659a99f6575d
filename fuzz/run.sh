#!/usr/bin/env bash
# Runs every fuzz target (or those named as arguments) for FUZZ_SECONDS each (default 20) on
# stable Rust without a sanitizer, starting from the checked-in seed corpora. Fails on the first
# crash (libFuzzer writes the input to fuzz/artifacts/<target>/; the other targets still run),
# and prints one line per target:
#
#     fuzz <target>: <execs> execs
#
# Usage: fuzz/run.sh [target...]      env: FUZZ_SECONDS
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
seconds="${FUZZ_SECONDS:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# The vaults the targets create live in a scratch directory removed afterwards (memory-backed
# when /dev/shm is there: the targets sync often, and the fuzzer runs them thousands of times).
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    scratch="$(mktemp -d /dev/shm/pdvault-fuzz.XXXXXX)"
else
    mkdir -p "$here/target"
    scratch="$(mktemp -d "$here/target/scratch.XXXXXX")"
fi
trap 'rm -rf "$scratch"' EXIT
# libFuzzer's output of each target, kept for a look after the run.
logs="$here/target/logs"
mkdir -p "$logs"

# Build every target once, so that each run's time limit is spent fuzzing.
cargo fuzz build --sanitizer none

status=0
for t in "${targets[@]}"; do
    corpus="$here/corpus/$t"
    work="$scratch/corpus-$t"
    mkdir -p "$work" "$here/artifacts/$t"
    log="$logs/$t.log"
    # New inputs go to a scratch corpus; the checked-in seeds are read only.
    set +e
    TMPDIR="$scratch" cargo fuzz run --sanitizer none "$t" "$work" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$here/artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    execs="$(grep -E '^stat::number_of_executed_units:' "$log" | tail -n 1 | awk '{print $2}')"
    echo "fuzz $t: ${execs:-0} execs"
    if [ "$rc" -ne 0 ]; then
        echo "fuzz $t: FAILED (exit $rc); the last lines of $log:" >&2
        tail -n 40 "$log" >&2
        status=1
    fi
    rm -rf "$work" "$scratch"/tmp* "$scratch"/.tmp* 2>/dev/null || true
done
exit "$status"
