# shellcheck shell=bash
# Shared by scripts/demo.sh and scripts/ablation.sh (sourced after scripts/common.sh, not run):
# picks the CMake preset, builds the training tools, and writes the synthetic shapes dataset.

# Sets preset and build_dir (DRCNN_PRESET, else ci with nvcc, else cpu-only), then builds the
# targets given as arguments.
drcnn_shapes_build() {
  drcnn_install_missing_packages
  drcnn_setup_cuda_path
  if [[ -n "${DRCNN_PRESET:-}" ]]; then
    preset="$DRCNN_PRESET"
  elif command -v nvcc >/dev/null 2>&1; then
    preset=ci
  else
    # The demo runs on the CPU, so it does not need CUDA; say so rather than fail.
    echo "drcnn: nvcc not found: building with the cpu-only preset"
    preset=cpu-only
  fi
  case "$preset" in
    default) build_dir=build/default ;;
    ci) build_dir=build/ci ;;
    cpu-only) build_dir=build/cpu ;;
    *) echo "drcnn: unknown preset '$preset' (default, ci, cpu-only)" >&2; return 1 ;;
  esac
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "${DRCNN_JOBS:-2}" --target "$@"
}

# drcnn_shapes_dataset DIR TRAIN VAL: the shapes dataset (examples/make_shapes.cpp, seed 1) in
# DIR, generated once per (TRAIN, VAL, generator options) and reused after that. The options are
# DRCNN_SHAPES_ARGS, default "--min-size 12 --max-aspect 1.6": objects of 12-128 px (longest
# side of the frame) stretched at most 1.6:1; docs/training.md ("The shapes demo") has why, and
# what the generator's own defaults (8 px, 2.5:1) reach. DRCNN_SHAPES_ARGS= gives those defaults.
drcnn_shapes_dataset() {
  local dir=$1 train=$2 val=$3
  local -a gen_args
  read -r -a gen_args <<< "${DRCNN_SHAPES_ARGS---min-size 12 --max-aspect 1.6}"
  local stamp
  stamp=".done-$train-$val-$(printf '%s' "${gen_args[*]}" | cksum | cut -d' ' -f1)"
  if [[ ! -f "$dir/annotations/instances_val.json" || ! -f "$dir/$stamp" ]]; then
    rm -rf "$dir"
    "./$build_dir/examples/drcnn_make_shapes" --out "$dir" --train "$train" --val "$val" --seed 1 "${gen_args[@]}"
    touch "$dir/$stamp"
  fi
}
