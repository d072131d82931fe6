#!/usr/bin/env bash
# Opt-in: the Debian speech synthesizers and real text of the ASR corpus generator
# (python -m definitions.tools.ljspeech_synth --engines auto uses whatever is installed).
# The framework and the demo do not need them: espeak-ng comes from PyPI (espeakng-loader),
# and a bundled text file stands in for Debian's fortunes. Run as root (or with sudo).
set -euo pipefail
PACKAGES=(flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts fortunes fortunes-min)
if [ "$(id -u)" != 0 ]; then
  echo "error: run as root: sudo bash scripts/install_tts.sh (installs: ${PACKAGES[*]})" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "error: apt-get not found: install ${PACKAGES[*]} with your system's package manager" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
echo "installed: ${PACKAGES[*]}"
