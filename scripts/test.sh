#!/usr/bin/env bash
# Set everything up and run the test suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# The cockpit's browser test drives Debian's chromium + chromedriver. Only the tests need them
# (the framework and the demo do not), so they are installed here, when missing and possible.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[test] installing chromium + chromium-driver for the cockpit's browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
      >/tmp/mlsystem-apt.log 2>&1 || echo "[test] apt-get failed (see /tmp/mlsystem-apt.log); the browser test will be skipped" >&2
  else
    echo "[test] chromium/chromedriver missing and not root with apt-get: the browser test will be skipped" >&2
  fi
fi
# The speech-corpus tests run every synthesizer: Debian's flite and festival voices (the demo only
# needs espeak-ng from PyPI). Installed here when missing and possible, else those tests are skipped.
if ! command -v flite >/dev/null || ! command -v festival >/dev/null || [ ! -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[test] installing flite + festival voices + fortunes for the speech-corpus tests"
    bash scripts/install_tts.sh >/tmp/mlsystem-tts-apt.log 2>&1 \
      || echo "[test] TTS install failed (see /tmp/mlsystem-tts-apt.log); those engine tests will be skipped" >&2
  else
    echo "[test] flite/festival missing and not root with apt-get: those engine tests will be skipped" >&2
  fi
fi
# The Slurm tests (marker `slurm`) run against a real single-node Slurm: scripts/slurm_up.sh installs
# slurm-wlm + munge (root with apt-get) and starts it. Elsewhere they are skipped with the reason.
bash scripts/slurm_up.sh >/tmp/mlsystem-slurm-up.log 2>&1 \
  || echo "[test] local Slurm not started (see /tmp/mlsystem-slurm-up.log): the Slurm tests will be skipped or fail" >&2
# The slowest tests are listed at the end, to keep an eye on the 20-minute budget.
.venv/bin/python -m pytest --durations=25 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
