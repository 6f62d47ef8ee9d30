#!/usr/bin/env bash
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
#        fuzz/run.sh build      (only builds the targets, as below; scripts/test.sh runs this in
#                                the background while the cargo tests run)
#
# Builds every fuzz target (with the flags `cargo fuzz build` uses, with debug assertions so
# that integer overflow is a crash; no sanitizer unless FUZZ_SANITIZER is set), replays the
# minimized crashes under
# fuzz/regressions/TARGET/, then fuzzes each target for SECONDS (default 20) on a temporary
# copy of its corpus (the committed corpus never grows), one target per core at a time. Prints one line per target: name,
# executions, executions per second. Exits non-zero if any target crashed, leaked, timed out
# or ran out of memory; the crashing input is kept and its path printed.
#
# Without TARGET arguments it runs every target except those with a known,
# unfixed crash (listed in KNOWN_CRASHING with the reason; re-enable them once fixed).
# Naming a target runs it regardless.
set -euo pipefail
cd "$(dirname "$0")"

build_only=false
[ "${1:-}" = build ] && build_only=true
seconds=${1:-20}
shift || true

ALL_TARGETS=(codec_h264 codec_hevc codec_av1 codec_aac codec_opus directives range
             flv_tags rtmp_publish ts_demux whip_rtp whip_dispatch whip_sdp
             packager_ops packager_ops_plausible http1)
# Targets with a known, unfixed crash (see fuzz/README.md, "Known crashes"): none today.
KNOWN_CRASHING=()
# Open invariant failures whose checks are skipped so that their targets still run (tags in
# fuzz/README.md): none today.

if [ $# -gt 0 ] && ! $build_only; then
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

# The build `cargo +nightly fuzz build --debug-assertions --sanitizer none` runs (cargo-fuzz
# 0.13's flags: libFuzzer's coverage instrumentation, `--cfg fuzzing`, debug assertions, the
# release profile with line tables), run with cargo itself so that neither CI nor a smoke run
# has to build cargo-fuzz (5 minutes on two cores); `cargo fuzz run/tmin/fmt` by hand use the
# same target directory and binaries. No sanitizer by default: the packager and origin forbid
# unsafe code, and AddressSanitizer makes the packager targets 4-5 times slower:
# FUZZ_SANITIZER=address fuzz/run.sh to use it. cargo-fuzz builds each crate as one codegen
# unit at opt-level 3 (the fastest fuzzing, the slowest build); where the build's time
# matters more than executions per second (scripts/test.sh's 6-second smoke run on a fresh
# machine), FUZZ_CODEGEN_UNITS=16 FUZZ_OPT_LEVEL=1 builds in 4.5 minutes on two cores
# (16 units at opt-level 3: 5.5 minutes; see fuzz/README.md).
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
rustflags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
rustflags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
rustflags+=" -Cllvm-args=-sanitizer-coverage-pc-table"
rustflags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
rustflags+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
rustflags+=" -Cllvm-args=-sanitizer-coverage-stack-depth -Cdebug-assertions"
rustflags+=" -Ccodegen-units=${FUZZ_CODEGEN_UNITS:-1}"
sanitizer=${FUZZ_SANITIZER:-none}
if [ "$sanitizer" != none ]; then
  rustflags+=" -Zsanitizer=$sanitizer"
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0
fi
RUSTFLAGS="$rustflags" cargo +nightly build --manifest-path Cargo.toml --target "$host" \
  --release --config 'profile.release.debug="line-tables-only"' \
  --config "profile.release.opt-level=${FUZZ_OPT_LEVEL:-3}" --bins
$build_only && exit 0
bin_dir=target/$host/release

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Fuzzes target $1: prints its table row on stdout, what went wrong on stderr; fails if it
# crashed (or its regression inputs crash again).
fuzz_one() {
  local t=$1 bin=$bin_dir/$1 status=0 execs rate keep dict=()
  [ -x "$bin" ] || { echo "fuzz/run.sh: no target $t" >&2; return 1; }
  # Fixed crashes stay fixed.
  if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
    if ! "$bin" -runs=1 regressions/"$t"/* >"$work/$t.regressions.log" 2>&1; then
      echo "$t: a regression input crashes again:" >&2
      grep -m3 -E 'panicked|ERROR' "$work/$t.regressions.log" >&2 || true
      return 1
    fi
  fi
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  if [ -d "corpus/$t" ]; then cp -r "corpus/$t/." "$work/corpus/$t/"; fi
  if [ -f "dict/$t.dict" ]; then dict=(-dict="dict/$t.dict"); fi
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
    return 1
  fi
}

# One target per core at a time (FUZZ_JOBS to change it): each fuzzes for SECONDS of wall
# time on one core either way, so two cores halve the run.
jobs_max=${FUZZ_JOBS:-$(nproc)}
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  (if fuzz_one "$t" >"$work/$t.row" 2>"$work/$t.err"; then echo ok; else echo failed; fi >"$work/$t.status") &
done
wait
failed=()
printf '%-24s %12s %10s\n' target executions exec/s
for t in "${targets[@]}"; do
  cat "$work/$t.row" 2>/dev/null || true
  cat "$work/$t.err" >&2 2>/dev/null || true
  [ "$(cat "$work/$t.status" 2>/dev/null)" = ok ] || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
