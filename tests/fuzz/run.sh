#!/usr/bin/env bash
# Fuzzes what dirsync reads from untrusted peers, each target for a
# bounded time: a benchmark-like run, not part of the test suite.
#
#   bash tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET ...]   (default 300 s, every target)
#
# Targets (tests/fuzz/fuzz_targets): ldap_message (the connection's
# decoder and the collector's entry reader), search_entry (an entry into a
# bus entry and a directory object), sync_controls (DirSync and RFC 4533
# control values, extended DNs, times), dn_and_addresses (DNs,
# proxyAddresses, GUIDs), bus_batch (batches off the bus, LZ4 included),
# settings (API and stored settings, schedules).
#
# Each run starts from the committed corpus (tests/fuzz/corpus/<target>),
# minimizes it afterwards (cargo fuzz cmin) and records executions, edges
# covered, features and crashes in tests/fuzz/results.tsv, from which
# tests/reliability/report.py writes RELIABILITY.md. An allocation over
# 64 MB, more than 1 GB resident, or one input running over 10 s is a
# crash. A crash's input is in tests/fuzz/artifacts/<target>/: make it a
# regression unit test beside the code it broke, fix it, run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

secs=${1:-300}
shift || true
all=(ldap_message search_entry sync_controls dn_and_addresses bus_batch settings)
targets=("${@:-${all[@]}}")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

log() { printf 'tests/fuzz/run.sh: %s\n' "$*" >&2; }

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# libFuzzer's instrumentation needs nightly flags: a nightly toolchain if
# rustup has one, otherwise the stable one with RUSTC_BOOTSTRAP.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
fuzz_dir=tests/fuzz
python3 "$fuzz_dir/seeds.py"
log "building the targets (release, AddressSanitizer)"
"${fuzz[@]}" build --fuzz-dir "$fuzz_dir" -O

results="$fuzz_dir/results.tsv"
[ -f "$results" ] || printf 'target\tseconds\texecutions\texecs_per_s\tedges\tfeatures\tcorpus\tcrashes\tdate\trevision\n' > "$results"
# The revision fuzzed, marked + when the work tree differs from it.
revision=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- shared services tests/fuzz/fuzz_targets || echo +)
for t in "${targets[@]}"; do
  corpus="$fuzz_dir/corpus/$t"
  mkdir -p "$corpus" "$fuzz_dir/artifacts/$t"
  out=$(mktemp)
  log "fuzzing $t for ${secs} s"
  set +e
  "${fuzz[@]}" run --fuzz-dir "$fuzz_dir" -O "$t" "$corpus" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=64 \
    -max_len=65536 -print_final_stats=1 > "$out" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -1)
  last=$(grep -E '^#[0-9]+' "$out" | tail -1)
  edges=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  features=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  crashes=$(find "$fuzz_dir/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
  if [ "$rc" -ne 0 ]; then
    log "$t stopped with exit code $rc; its last lines:"
    tail -30 "$out" >&2
  fi
  log "minimizing the corpus of $t"
  "${fuzz[@]}" cmin --fuzz-dir "$fuzz_dir" -O "$t" "$corpus" >/dev/null 2>&1 || log "cmin of $t failed"
  size=$(find "$corpus" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$secs" "${execs:-0}" "${rate:-0}" \
    "${edges:-0}" "${features:-0}" "$size" "$crashes" "$(date -u +%Y-%m-%d)" "$revision" >> "$results"
  rm -f "$out"
done
log "results: $results"
column -t -s $'\t' "$results" >&2 || cat "$results" >&2
