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
if [ "$#" -gt 0 ] || [ -n "${MLSYSTEM_TESTS_SERIAL:-}" ]; then
  .venv/bin/python -m pytest --durations=25 "$@"
  rc=$?
  [ "$rc" -eq 5 ] && { echo "error: pytest collected no tests" >&2; exit 1; }
  exit "$rc"
fi
# The whole suite: the cluster-engine tests (Slurm, submitit's LocalExecutor) spend most of their
# time waiting on the engine (scheduling, requeue delays, jobs that sleep through their steps), so
# they run in a second pytest beside the rest (own temp folder, output shown after), which keeps
# the suite well under 20 minutes on 2 cores. MLSYSTEM_TESTS_SERIAL=1 runs everything in one.
ENGINE_TESTS=(tests/test_cluster_runner.py tests/test_submitit_job.py)
engine_log=$(mktemp /tmp/mlsystem-engine-tests.XXXXXX.log)
.venv/bin/python -m pytest --durations=10 -p no:cacheprovider --basetemp=/tmp/mlsystem-engine-tests \
  "${ENGINE_TESTS[@]}" >"$engine_log" 2>&1 &
engine_pid=$!
# A background job of a script ignores Ctrl-C (SIGINT): stop it (SIGTERM) with the script.
trap 'kill "$engine_pid" 2>/dev/null' EXIT
trap 'exit 130' INT TERM
.venv/bin/python -m pytest --durations=25 "${ENGINE_TESTS[@]/#/--ignore=}"
rc=$?
wait "$engine_pid"
engine_rc=$?
trap - EXIT
echo "================ the cluster-engine tests (run beside the rest) ================"
cat "$engine_log"
for code in "$rc" "$engine_rc"; do
  if [ "$code" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
  fi
done
[ "$rc" -ne 0 ] && exit "$rc"
exit "$engine_rc"
