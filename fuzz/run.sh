#!/usr/bin/env bash
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
#
# Builds every fuzz target (cargo +nightly fuzz, with debug assertions so that integer overflow
# is a crash; no sanitizer unless FUZZ_SANITIZER is set), replays the minimized crashes under
# fuzz/regressions/TARGET/, then fuzzes each target for SECONDS (default 20) on a temporary
# copy of its corpus (the committed corpus never grows). Prints one line per target: name,
# executions, executions per second. Exits non-zero if any target crashed, leaked, timed out
# or ran out of memory; the crashing input is kept and its path printed.
#
# Without TARGET arguments it runs every target except those with a known,
# unfixed crash (listed in KNOWN_CRASHING with the reason; re-enable them once fixed).
# Naming a target runs it regardless.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-20}
shift || true

ALL_TARGETS=(codec_h264 codec_hevc codec_av1 codec_aac codec_opus directives range
             flv_tags rtmp_publish ts_demux whip_rtp whip_dispatch whip_sdp
             packager_ops packager_ops_plausible)
# Targets with a known, unfixed crash (see fuzz/README.md, "Known crashes"): none today.
KNOWN_CRASHING=()
# Open invariant failures whose checks are skipped so that their targets still run (tags in
# fuzz/README.md): none today.

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for t in "${ALL_TARGETS[@]}"; do
    [[ " ${KNOWN_CRASHING[*]} " == *" $t "* ]] || targets+=("$t")
  done
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: cargo-fuzz is missing (cargo install cargo-fuzz --locked)" >&2
  exit 1
fi

# No sanitizer by default: the packager and origin forbid unsafe code, and AddressSanitizer
# makes the packager targets 4-5 times slower. FUZZ_SANITIZER=address fuzz/run.sh to use it.
sanitizer=${FUZZ_SANITIZER:-none}
cargo +nightly fuzz build --debug-assertions --sanitizer "$sanitizer"
bin_dir=target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
printf '%-24s %12s %10s\n' target executions exec/s
for t in "${targets[@]}"; do
  bin=$bin_dir/$t
  [ -x "$bin" ] || { echo "fuzz/run.sh: no target $t" >&2; failed+=("$t"); continue; }
  # Fixed crashes stay fixed.
  if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
    if ! "$bin" -runs=1 regressions/"$t"/* >"$work/$t.regressions.log" 2>&1; then
      echo "$t: a regression input crashes again:" >&2
      grep -m3 -E 'panicked|ERROR' "$work/$t.regressions.log" >&2 || true
      failed+=("$t")
      continue
    fi
  fi
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  [ -d "corpus/$t" ] && cp -r "corpus/$t/." "$work/corpus/$t/"
  dict=()
  [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  status=0
  "$bin" "$work/corpus/$t" "${dict[@]}" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" >"$work/$t.log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log" | tail -1)
  printf '%-24s %12s %10s\n' "$t" "${execs:-?}" "${rate:-?}"
  if [ "$status" != 0 ]; then
    keep=artifacts/$t
    mkdir -p "$keep"
    cp "$work/artifacts/$t/"* "$keep/" 2>/dev/null || true
    echo "$t: crashed (exit $status); input kept in fuzz/$keep/:" >&2
    grep -m5 -E 'panicked|ERROR|SUMMARY' "$work/$t.log" >&2 || true
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
