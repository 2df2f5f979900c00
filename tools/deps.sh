#!/usr/bin/env bash
# deps.sh [runtime|test] — installs, with apt-get, whatever of vkmoe's Debian 12 dependencies is
# missing (nothing is downloaded when everything is there). Run as root.
#   runtime: compiler, CMake, Ninja, glslang, Vulkan loader + headers, lavapipe, cJSON, libyaml, stb
#   test:    + validation layers, cmocka, clang (fuzzers), the aarch64 cross toolchain (with its C
#              library, only recommended by gcc-aarch64-linux-gnu, so named here) and the
#              arm64 -dev packages for the cross build
set -euo pipefail
what=${1:-runtime}
pkgs=(build-essential cmake ninja-build pkg-config glslang-tools libvulkan-dev libvulkan1
      mesa-vulkan-drivers libcjson-dev libyaml-dev libstb-dev)
if [ "$what" = test ]; then
  pkgs+=(vulkan-validationlayers libcmocka-dev clang libclang-rt-14-dev gcc-aarch64-linux-gnu
         libc6-dev-arm64-cross libvulkan-dev:arm64 libcjson-dev:arm64 libyaml-dev:arm64)
fi
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then missing+=("$p"); fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
if printf '%s\n' "${missing[@]}" | grep -q ':arm64$' && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps arm64 driver manifests (mesa-vulkan-drivers:arm64) off the host
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
