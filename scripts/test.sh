#!/usr/bin/env bash
# Install everything the tests need and run them: the package with its dev extras, and the real
# tools the tests drive (cloud-init's schema check, shellcheck, nginx -t and a live nginx).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k aws`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cloud-init >/dev/null || missing+=(cloud-init)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v nginx >/dev/null && [ -x "$(command -v nginx)" ] || missing+=(nginx)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nginx lives in /usr/sbin, which a non-root PATH may lack
export PATH="$PATH:/usr/sbin:/sbin"

python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
python3 -m ruff check .
python3 -m pytest "$@"
