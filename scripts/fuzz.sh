#!/usr/bin/env bash
# Builds drcnn's libFuzzer targets (fuzz/fuzz_<name>.cpp) with clang + ASan/UBSan and runs each
# one for a bounded time. Every fuzzer starts from a temporary COPY of its committed seed corpus
# fuzz/corpus/fuzz_<name>/ (the committed corpus never grows), with fuzz/fuzz_<name>.dict as its
# dictionary when that file exists. A crash, leak, sanitizer report or timeout fails the script
# and keeps the reproducer (path printed). Separate from scripts/test.sh.
#
#   scripts/fuzz.sh [--seconds N] [--build-dir DIR] [--keep] [--no-build] [NAME...]
#     --seconds N     run time per fuzzer (default 60)
#     --build-dir D   build folder (default build/fuzz)
#     --keep          keep the temporary corpora and logs (default: deleted unless a fuzzer failed)
#     --no-build      run what is already built
#     NAME...         only these fuzzers (fuzz_coco, coco, ...); default: every fuzz/fuzz_*.cpp
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=60
build_dir="$here/build/fuzz"
keep=0
build=1
only=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) only+=("fuzz_${1#fuzz_}"); shift ;;
  esac
done
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "fuzz.sh: --seconds needs a positive integer" >&2; exit 2; }

# shellcheck source=scripts/common.sh
source "$here/scripts/common.sh"
DRCNN_APT_PACKAGES+=(clang libclang-rt-dev)
drcnn_install_missing_packages

if [[ $build -eq 1 ]]; then
  # fuzzer-no-link: libFuzzer's coverage instrumentation (no main) in the library too; without it
  # the fuzzers would only see the edges of their own small file.
  sanitize="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # CPU only, no tests/examples; OpenMP off (the fuzzers are single-threaded; libomp under ASan is
  # noise). -fsanitize=fuzzer (which links libFuzzer's main) is added to the fuzzer executables
  # only (fuzz/CMakeLists.txt).
  CC=clang CXX=clang++ cmake -S "$here" -B "$build_dir" -G Ninja "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDRCNN_WITH_CUDA=OFF -DDRCNN_WITH_OPENMP=OFF -DDRCNN_BUILD_TESTS=OFF -DDRCNN_BUILD_EXAMPLES=OFF \
    -DDRCNN_BUILD_BENCHMARKS=OFF -DDRCNN_INSTALL=OFF -DDRCNN_BUILD_FUZZERS=ON \
    "-DCMAKE_CXX_FLAGS=$sanitize" >/dev/null
  cmake --build "$build_dir" -j "${DRCNN_FUZZ_JOBS:-2}"
fi

targets=()
for src in "$here"/fuzz/fuzz_*.cpp; do
  name=$(basename "$src" .cpp)
  if [[ ${#only[@]} -gt 0 && ! " ${only[*]} " =~ " $name " ]]; then continue; fi
  targets+=("$name")
done
[[ ${#targets[@]} -gt 0 ]] || { echo "fuzz.sh: no fuzzer selected" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/drcnn-fuzz.XXXXXX")
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
summary=()
for name in "${targets[@]}"; do
  exe="$build_dir/fuzz/$name"
  [[ -x "$exe" ]] || { echo "fuzz.sh: $exe not built" >&2; failed=1; summary+=("$name: NOT BUILT"); continue; }
  corpus="$work/$name/corpus"
  mkdir -p "$corpus" "$work/$name/artifacts"
  seeds=0
  if [[ -d "$here/fuzz/corpus/$name" ]]; then
    cp -r "$here/fuzz/corpus/$name/." "$corpus/"
    seeds=$(find "$corpus" -type f | wc -l)
  fi
  dict=()
  [[ -f "$here/fuzz/$name.dict" ]] && dict=("-dict=$here/fuzz/$name.dict")
  echo "== $name: ${seconds} s from $seeds seeds"
  log="$work/$name/log.txt"
  status=0
  "$exe" "$corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=8192 -print_final_stats=1 -artifact_prefix="$work/$name/artifacts/" >"$log" 2>&1 || status=$?
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  units=$(find "$corpus" -type f | wc -l)
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' || true)
  if [[ $status -ne 0 ]]; then
    failed=1
    summary+=("$name: FAILED (exit $status) after ${execs:-?} runs; log $log; reproducers in $work/$name/artifacts/")
    tail -n 40 "$log"
  else
    summary+=("$name: ok, ${execs:-?} runs in ${seconds} s (${rate:-?}/s), ${cov:-cov: ?}, corpus $seeds -> $units")
  fi
done

echo "== summary"
printf '  %s\n' "${summary[@]}"
if [[ $failed -eq 0 && $keep -eq 0 ]]; then
  rm -rf "$work"
else
  echo "fuzz.sh: work folder kept: $work"
fi
exit $failed
