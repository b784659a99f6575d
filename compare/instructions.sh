#!/usr/bin/env bash
# Instructions per operation, pdvault against the floor (sled + one XChaCha20-Poly1305 seal per
# value), counted by callgrind inside `measured_loop` only: the store's setup and the process's
# other threads are not counted, nor is time spent in the kernel (a batch's fsync).
#
#   compare/instructions.sh            # from the repository's root or anywhere
#
# Environment: PDVAULT_OPS_RECORDS (records set up first, interleaved, default 20000),
# OPS_PUT (records put, in batches of 1,000, default 2000), OPS_GET (random gets, default 5000),
# OPS_SCAN (1,000-record subject scans, default 5), OPS_ERASE (1,000-record subjects erased, each
# once: the floor deletes the subject's rows, pdvault erases it; default 10), CARGO_TARGET_DIR.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/target}"
cargo build --quiet --release --manifest-path "$here/Cargo.toml"
bin="$target/release/pdvault-compare"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

count() { # op engine n -> instructions in measured_loop
    local file="$out/callgrind.$1.$2"
    valgrind --tool=callgrind --fair-sched=yes --toggle-collect='*measured_loop*' \
        --callgrind-out-file="$file" "$bin" --ops "$1" "$2" "$3" >&2 2>"$out/log.$1.$2" \
        || { cat "$out/log.$1.$2" >&2; exit 1; }
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

printf '| op (interleaved, %s records set up) | n | floor instructions/op | pdvault instructions/op | pdvault / floor |\n' \
    "${PDVAULT_OPS_RECORDS:-20000}"
printf '|---|---|---|---|---|\n'
for spec in "put ${OPS_PUT:-2000}" "get ${OPS_GET:-5000}" "scan ${OPS_SCAN:-5}" "erase ${OPS_ERASE:-10}"; do
    set -- $spec
    floor=$(count "$1" floor "$2")
    pdv=$(count "$1" pdvault "$2")
    awk -v op="$1" -v n="$2" -v f="$floor" -v p="$pdv" 'BEGIN {
        if (f == 0 || p == 0) { print "no instructions counted for " op > "/dev/stderr"; exit 1 }
        printf "| %s | %d | %.0f | %.0f | %.2fx |\n", op, n, f / n, p / n, p / f
    }'
done
