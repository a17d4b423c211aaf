#!/usr/bin/env bash
# Runs every cargo-fuzz target for a time box and reports how many inputs each executed.
# A crash fails the run: a panic, an input running longer than 20 s (a hang), or one
# allocation over the malloc limit (an unbounded allocation from a length in the input).
#
#   scripts/fuzz.sh                     # CI: FUZZ_SECONDS (default 30) per target
#   FUZZ_SECONDS=3600 scripts/fuzz.sh   # long mode
#   scripts/fuzz.sh session             # one target
#
# New inputs go to a scratch corpus, seeded from the committed one (fuzz/corpus/<target>,
# crates/zk-proto/fuzz/corpus/decode): `cargo test` replays the committed corpora. To keep
# what a long run found, minimise into the committed directory:
#   cd fuzz && cargo +nightly fuzz cmin <target>
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-30}"
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked -q
fi

# target directory max_len
all=(
  "decode crates/zk-proto/fuzz 65536"
  "session fuzz 16384"
  "datadir fuzz 200000"
  "peer fuzz 16384"
)
only="${1:-}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
summary=()
for entry in "${all[@]}"; do
  read -r target dir max_len <<<"$entry"
  [ -n "$only" ] && [ "$only" != "$target" ] && continue
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  echo "== fuzz $target: ${secs} s"
  if ! (cd "$dir" && cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$secs" -max_len="$max_len" -timeout=20 \
        -rss_limit_mb=4096 -malloc_limit_mb=1024 -print_final_stats=1 >"$log" 2>&1); then
    tail -n 60 "$log"
    echo "fuzz $target: FAILED (crash input under $dir/artifacts/$target/)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  [ -n "$runs" ] || { tail -n 30 "$log"; echo "fuzz $target: no statistics" >&2; exit 1; }
  if [ "$runs" -lt 100 ]; then
    echo "fuzz $target: only $runs executions in $secs s" >&2
    exit 1
  fi
  summary+=("$target: $runs executions in $secs s, coverage $cov edges, 0 crashes")
done
printf '%s\n' "${summary[@]}"
