#!/usr/bin/env bash
# A short fuzzing smoke run of both targets, on the stable toolchain that
# rust-toolchain.toml pins (no nightly: libFuzzer without a sanitizer, see
# README.md). From a fresh clone it installs cargo-fuzz (pinned, --locked) if
# it is missing, seeds the corpora, builds both targets and runs each for
# FUZZ_SECONDS. Exits non-zero on any crash, panic, failed assertion, hang
# (an input slower than FUZZ_TIMEOUT) or out-of-memory; the input is left in
# fuzz/artifacts/<target>/.
#
#   bash fuzz/run-short.sh                      # 60 s per target
#   FUZZ_SECONDS=300 bash fuzz/run-short.sh     # 5 min per target
#
# Environment (all optional):
#   FUZZ_SECONDS       seconds per target (default 60)
#   FUZZ_TARGETS       targets to run (default "wheel_reader text_parsers")
#   FUZZ_TARGET_DIR    cargo target dir (default fuzz/target)
#   FUZZ_TIMEOUT       seconds one input may take before it is a hang (default 10)
#   FUZZ_RSS_LIMIT_MB  memory limit, libFuzzer's -rss_limit_mb (default 2048)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
fuzz_dir="$(pwd)"

# Pinned: bump it here (and in README.md) on purpose.
CARGO_FUZZ_VERSION=0.13.2

seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-wheel_reader text_parsers}"
target_dir="${FUZZ_TARGET_DIR:-$fuzz_dir/target}"
timeout="${FUZZ_TIMEOUT:-10}"
rss_limit="${FUZZ_RSS_LIMIT_MB:-2048}"

step() { printf '\n==> [fuzz %ss] %s\n' "$SECONDS" "$*"; }

step "cargo-fuzz $CARGO_FUZZ_VERSION"
if [[ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
cargo fuzz --version
rustc --version

step "seed corpora"
CARGO_TARGET_DIR="$target_dir" ./seed.sh

# `--sanitizer none`: AddressSanitizer needs `-Zsanitizer`, a nightly flag.
# libFuzzer itself, its coverage instrumentation, `--cfg fuzzing`, debug
# assertions and overflow checks all work on stable.
fuzz_flags=(--sanitizer none --target-dir "$target_dir")

step "build $targets"
for target in $targets; do
    cargo fuzz build "${fuzz_flags[@]}" "$target"
done

failed=()
for target in $targets; do
    step "run $target for ${seconds}s"
    mkdir -p artifacts
    log="artifacts/run-short-$target.log"
    libfuzzer_flags=(-max_total_time="$seconds" -timeout="$timeout"
        -rss_limit_mb="$rss_limit" -print_final_stats=1)
    if [[ -f "dicts/$target.dict" ]]; then
        libfuzzer_flags+=(-dict="dicts/$target.dict")
    fi
    if cargo fuzz run "${fuzz_flags[@]}" "$target" "corpus/$target" -- \
        "${libfuzzer_flags[@]}" >"$log" 2>&1; then
        echo "$target: no crash"
    else
        echo "$target: FAILED (exit $?); last lines of $log:"
        tail -n 60 "$log"
        failed+=("$target")
    fi
    # libFuzzer's closing figures: runs, exec/s, coverage, corpus size.
    grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs|^stat::' "$log" || true
    echo "corpus/$target: $(find "corpus/$target" -type f | wc -l) files"
done

if ((${#failed[@]})); then
    step "fuzzing found a problem in: ${failed[*]}"
    for target in "${failed[@]}"; do
        find "artifacts/$target" -type f -print
    done
    echo "reproduce: cd fuzz && cargo fuzz run --sanitizer none <target> artifacts/<target>/<file>"
    exit 1
fi
step "fuzzing: no crash in $targets"
