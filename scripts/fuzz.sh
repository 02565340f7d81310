#!/usr/bin/env bash
# Fuzzes the decoder (fuzz/fuzz_targets/decode.rs: arbitrary bytes into Codec::decode) for a
# bounded time, and fails if it finds a crash (the input is left in fuzz/artifacts/decode/; replay
# it with `cargo +stable fuzz run -s none decode <file>`).
#
#   scripts/fuzz.sh [SECONDS]      default 60
#
# Runs on the stable toolchain: cargo-fuzz needs nightly only for -Zsanitizer, so the target is
# built with `--sanitizer none` (libFuzzer's coverage instrumentation, debug assertions and overflow
# checks stay on). Memory bugs are Rust's to prevent here: the codec has no unsafe code.
# The first build compiles the crate and librdkafka into fuzz/target (about 6 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
# The default toolchain (stable on CI); FUZZ_TOOLCHAIN=name picks another.
toolchain="${FUZZ_TOOLCHAIN:-}"
say() { printf '==> %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (cargo install, one time, about 30 s)"
  cargo install cargo-fuzz --locked --quiet
fi

# fuzz/corpus/decode/ (not committed) collects what the fuzzer finds; fuzz/seeds/decode/ holds one
# valid record per kind and framing (tests/fuzz_seeds.rs checks and regenerates them).
mkdir -p fuzz/corpus/decode
say "fuzzing Codec::decode for ${seconds}s"
cargo ${toolchain:+"+$toolchain"} fuzz run --sanitizer none decode fuzz/corpus/decode fuzz/seeds/decode -- \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
