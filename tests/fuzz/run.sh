#!/bin/sh
# Runs the agent fuzz target for SB_FUZZ_SECONDS (default 20) from a fresh seed corpus plus
# whatever earlier runs left in $SB_FUZZ_CORPUS (default: tests/fuzz/corpus in the build
# directory), and fails if libFuzzer finds a crash, a leak, a sanitizer report or a hang.
#
#   tests/fuzz/run.sh build-fuzz/tests/fuzz/fuzz_agent            # the CI smoke run
#   SB_FUZZ_SECONDS=3600 tests/fuzz/run.sh build-fuzz/tests/fuzz/fuzz_agent -jobs=2 -workers=2
#
# Findings (crash-*, leak-*, timeout-*) are written to $SB_FUZZ_ARTIFACTS (default: findings/
# next to the target); reproduce one with `fuzz_agent FILE`. As root the target runs as nobody
# (fuzz_agent.cc says why), so these directories are handed to nobody.
set -eu
target=$(realpath "$1")
shift
seconds=${SB_FUZZ_SECONDS:-20}
dir=$(dirname "$target")
corpus=${SB_FUZZ_CORPUS:-$dir/corpus}
seeds=$dir/seeds
artifacts=${SB_FUZZ_ARTIFACTS:-$dir/findings}
rm -rf "$seeds"
mkdir -p "$corpus" "$artifacts" "$seeds"
if [ "$(id -u)" = 0 ]; then
  chown -R 65534:65534 "$corpus" "$artifacts" "$seeds"
fi
SB_FUZZ_SEEDS=$seeds "$target"
# Inputs that once found a bug (tests/fuzz/regressions) run first, each once.
regressions=$(dirname "$(realpath "$0")")/regressions
if [ -d "$regressions" ] && [ -n "$(ls "$regressions")" ]; then
  "$target" "$regressions"/*
  echo "fuzz_agent: $(ls "$regressions" | wc -l) regression inputs passed"
fi
echo "fuzz_agent: $(ls "$seeds" | wc -l) seeds, $(ls "$corpus" | wc -l) corpus entries, ${seconds} s"
# -timeout: one input may take this long (an agent call that blocks until cancelled counts).
# -rss_limit_mb: ASan's shadow and quarantine plus the agent's own buffers.
export SB_FUZZ_STALLS="$artifacts"
exec "$target" -max_total_time="$seconds" -max_len=65536 -timeout=30 -rss_limit_mb=4096 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "$corpus" "$seeds"
