#!/usr/bin/env bash
# Installs a CPU Vulkan driver so the WebGPU kernels run for real on a machine without a GPU, plus
# headless Chromium for the browser test. Debian bookworm, as root; safe to run again.
#
#   sudo .ci/install-webgpu-driver.sh        # then export what it prints (or let the tests find it)
#
# Installs (Debian bookworm): libvulkan1; mesa-vulkan-drivers from bookworm-backports (Mesa 25 lavapipe,
# /usr/share/vulkan/icd.d/lvp_icd.json); chromium + chromium-common (headless browser test, and
# SwiftShader's /usr/lib/chromium/vk_swiftshader_icd.json as a second CPU driver).
#
# Driver: lavapipe from Mesa 25 (bookworm-backports), which has shader-f16. Debian bookworm's own
# Mesa 22 lavapipe gives Dawn no adapter. SwiftShader (in chromium-common) also works, without f16,
# and is what Chromium uses for WebGPU in the browser test.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n bash "$0" "$@"
  fi
  echo "run as root (apt-get), or with passwordless sudo" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive

. /etc/os-release
codename=${VERSION_CODENAME:-bookworm}
backports="${codename}-backports"

# 1. bookworm-backports, once.
if ! grep -rqs -- "${backports}" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > /etc/apt/sources.list.d/${backports}.sources <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: ${backports}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  echo "added ${backports} to /etc/apt/sources.list.d/${backports}.sources"
fi
apt-get update -qq

# 2. Vulkan loader + Mesa's lavapipe from backports (Mesa >= 25), and Chromium (brings SwiftShader).
apt-get install -y -qq --no-install-recommends libvulkan1 >/dev/null
apt-get install -y -qq --no-install-recommends -t "${backports}" mesa-vulkan-drivers >/dev/null
apt-get install -y -qq --no-install-recommends chromium chromium-common >/dev/null

# 3. Report what to use.
lavapipe=$(ls /usr/share/vulkan/icd.d/lvp_icd*.json 2>/dev/null | head -1 || true)
swiftshader=/usr/lib/chromium/vk_swiftshader_icd.json
mesa_version=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo none)
echo "mesa-vulkan-drivers ${mesa_version}; chromium $(dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo none)"
if [[ -n ${lavapipe} && -f ${lavapipe} ]]; then
  echo "export VK_DRIVER_FILES=${lavapipe} VK_ICD_FILENAMES=${lavapipe}"
elif [[ -f ${swiftshader} ]]; then
  echo "export VK_DRIVER_FILES=${swiftshader} VK_ICD_FILENAMES=${swiftshader}"
else
  echo "no CPU Vulkan driver found after install" >&2
  exit 1
fi
echo "export DEFT_CHROMIUM=/usr/bin/chromium"
