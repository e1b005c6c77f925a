#!/usr/bin/env bash
# Quickstart driver: creates (or reuses) a virtual environment, installs isekai-gen into it,
# then runs one job.
#   ./dev.sh build    offline smoke-test build (`isekai-gen build --preset tiny`) into out/tiny
#   ./dev.sh test     the test suite
set -euo pipefail
cd "$(dirname "$0")"

VENV="${ISEKAI_VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  # Reinstall only when the project's dependencies changed since the last install.
  local stamp="$VENV/.isekai-gen-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
    touch "$stamp"
  fi
}

case "${1:-}" in
  build)
    shift
    setup
    HF_HUB_OFFLINE=1 "$VENV/bin/isekai-gen" build --preset tiny --out out/tiny "$@"
    ;;
  test)
    shift
    setup
    # The review page's tests drive the system Chromium: install it quietly when it is missing.
    if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
      as_root=$([ "$(id -u)" = 0 ] && echo "" || echo "sudo -n")
      { $as_root apt-get update -qq && $as_root apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
        || echo "note: could not install chromium; the browser tests will be skipped (a failure when CI=true)" >&2
    fi
    # The layering of ARCHITECTURE.md ([tool.importlinter] in pyproject.toml): a broken contract fails the run.
    "$VENV/bin/lint-imports" --no-cache >/dev/null || { "$VENV/bin/lint-imports" --no-cache | sed -n '/Broken contracts/,$p' >&2; exit 1; }
    # loadfile: a module's tests share one worker, so module fixtures (a Ray cluster, a reference
    # build) are made once, not once per worker.
    HF_HUB_OFFLINE=1 "$VENV/bin/python" -m pytest -n 2 --dist loadfile "$@"
    ;;
  *)
    echo "usage: ./dev.sh build|test [extra arguments]" >&2
    exit 2
    ;;
esac
