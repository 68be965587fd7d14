# shellcheck shell=bash
# Shared by scripts/test.sh and scripts/demo.sh (sourced, not run).
# Installs missing Debian packages, puts nvcc on PATH, and picks the CMake preset.

# ocl-icd-opencl-dev: Debian's oneDNN is built with its OpenCL GPU runtime, so its CMake config
# (dnnl-config.cmake) runs find_package(OpenCL REQUIRED) and configuring fails without the OpenCL
# headers and libOpenCL.so; libdnnl-dev only recommends the package, and we install without
# recommends. drcnn itself uses no OpenCL.
DRCNN_APT_PACKAGES=(cmake ninja-build ccache g++ libeigen3-dev libfmt-dev catch2 libstb-dev
                    libbenchmark-dev libomp-dev nlohmann-json3-dev
                    libsimdjson-dev libpugixml-dev libcli11-dev libyaml-cpp-dev libdnnl-dev
                    ocl-icd-opencl-dev libopenmpi-dev openmpi-bin)

# Installs whatever in DRCNN_APT_PACKAGES is missing; does nothing (and needs no network or
# root) when everything is already there.
drcnn_install_missing_packages() {
  if ! command -v dpkg >/dev/null 2>&1; then
    echo "drcnn: dpkg not found (not Debian/Ubuntu?): install these yourself: ${DRCNN_APT_PACKAGES[*]}" >&2
    return 0
  fi
  local missing=() p
  for p in "${DRCNN_APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "drcnn: installing missing packages: ${missing[*]}"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "drcnn: not root and no sudo; install: ${missing[*]}" >&2; return 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# nvcc lives in /usr/local/cuda/bin, which CI shells often do not have on PATH.
drcnn_setup_cuda_path() {
  if [[ -d /usr/local/cuda/bin && ":$PATH:" != *":/usr/local/cuda/bin:"* ]]; then
    export PATH="/usr/local/cuda/bin:$PATH"
  fi
}

# Seconds since the epoch (for the timing lines).
drcnn_now() { date +%s; }
