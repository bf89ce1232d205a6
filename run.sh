#!/usr/bin/env bash
# The two commands of the README's quick start, on Debian or Ubuntu (as root or with sudo):
#
#   ./run.sh main [--config.x=y ...]   set up if needed, then train the tiny config (runs/tiny)
#   ./run.sh test                      set up if needed, then the tests and every README command
#
# Setting up, each step only when needed, so a second call starts at once: the Debian packages
# (python3-venv, the embedded speech corpus fillets-ng-data-cs, alsa-utils' spoken clips), the
# virtual environment .venv, and the pinned requirements with the perceptual extra (redone when
# requirements*.txt or setup.py change: .venv/.installed holds their hash). The training dataset
# is built from the corpus by the first run that needs it. PYTHON picks the interpreter
# (default python3, 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.installed"
PACKAGES=(python3-venv fillets-ng-data-cs alsa-utils)

usage() {
  echo "usage: $0 main [--config.x=y ...] | test" >&2
  exit 2
}

system_packages() {
  # What the packages provide, checked directly, so any machine that already has it skips apt.
  if [ -d /usr/share/games/fillets-ng/sound ] && [ -f /usr/share/sounds/alsa/Front_Center.wav ] \
      && command -v "$PYTHON" >/dev/null && "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    return
  fi
  if ! command -v apt-get >/dev/null; then
    echo "run.sh: missing ${PACKAGES[*]} (or $PYTHON) and no apt-get to install them;" \
         "install their equivalents and rerun" >&2
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3 "${PACKAGES[@]}"
}

python_packages() {
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local want
  want="$(cat requirements.txt requirements-perceptual.txt setup.py | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    return
  fi
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r requirements.txt
  # Optional extra of the evaluation (DNSMOS and ViSQOL); its tests need it.
  "$VENV/bin/pip" install -q -r requirements-perceptual.txt
  "$VENV/bin/pip" install -q --no-deps -e .
  echo "$want" > "$STAMP"
}

[ $# -ge 1 ] || usage
command="$1"
shift
case "$command" in
  main|test) ;;
  *) usage ;;
esac

system_packages
python_packages
# shellcheck disable=SC1091
. "$VENV/bin/activate"

if [ "$command" = main ]; then
  # The README's main job: the tiny config on the embedded corpus, on CPU.
  exec python -m experiments.main --config=experiments/configs/tiny.py --workdir=runs/tiny "$@"
fi
[ $# -eq 0 ] || usage
# The README's test command, then every other command the README documents, verbatim: the main
# run on the embedded corpus, evaluation, synthesis and the schedule search on its checkpoint, and
# the Python example; then the parity study's quick run where the reference can be installed.
python -m pytest -q tests
python .ci/run_readme.py

# The parity study's quick mode against the reference PyTorch WaveGrad (README "Parity"), with torch
# and the reference installed beside the venv, never into it. It needs the CPU torch wheel of this
# kind of machine (pip's find-links); without one, pip would fetch a multi-GB CUDA build instead.
if ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
  if [ ! -d .parity-extra/torch ] || [ ! -d .parity-extra/wavegrad ]; then
    pip install -q --target .parity-extra torch==2.13.0
    pip install -q --no-deps --target .parity-extra wavegrad==0.1.5
  fi
  PYTHONPATH="$PWD:$PWD/.parity-extra" python -m experiments.parity \
    --config=experiments/configs/parity.py:quick --output=/tmp/parity_quick.json
else
  echo "parity quick run skipped: no local CPU torch 2.13.0 wheel in /opt/wheels"
fi
