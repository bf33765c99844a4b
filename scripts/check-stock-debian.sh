#!/usr/bin/env bash
# README's set-up on stock Debian 12: a minimal bookworm (debootstrap, kept in a cache dir) with only
# python3, python3-venv and git, a fresh copy of this repository in it, then README's command 1
# there, as a new user's shell runs it (no PYTHONPATH, no virtual environment, pip's defaults plus
# this machine's pip configuration): its fresh .venv holds the package and the declared dependencies
# only, no ambient click or pytest. Checks that plain `pip install` is refused (the reason for the
# virtual environment), then runs tests/test_usage_errors.py against that environment. Needs root
# (debootstrap, chroot) and pytest in the calling environment (scripts/test.sh runs it from .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

root="${XDG_CACHE_HOME:-$HOME/.cache}/llm-deploy-tools/stock-debian-bookworm"
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
if ! [ -x "$root/usr/bin/python3" ]; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  echo "debootstrap bookworm (python3, python3-venv, git) from $mirror into $root"
  rm -rf "$root"
  debootstrap --variant=minbase --include=python3,python3-venv,git,ca-certificates bookworm "$root" "$mirror" >/dev/null
fi

copy="$root/home/user/llm-deploy"
rm -rf "$copy" && mkdir -p "$copy"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
  [ -e "$file" ] && printf '%s\0' "$file"
done | tar --null -T - -cf - | tar -xf - -C "$copy"
# this machine's network: its resolver, its CA bundle (a TLS proxy may sit between it and PyPI) and pip settings
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
for conf in /etc/pip.conf /etc/xdg/pip; do
  if [ -e "$conf" ]; then mkdir -p "$root$(dirname "$conf")" && cp -r "$conf" "$root$(dirname "$conf")/"; fi
done
mounted=()
cleanup() { for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" || true; done; }
trap cleanup EXIT
for fs in proc dev; do
  mount --bind "/$fs" "$root/$fs" && mounted+=("$root/$fs")
done
pip_cache="${XDG_CACHE_HOME:-$HOME/.cache}/pip"  # downloads only: what gets installed is up to pip in Debian
if [ -d "$pip_cache" ]; then
  mkdir -p "$root/root/.cache/pip" && mount --bind "$pip_cache" "$root/root/.cache/pip" && mounted+=("$root/root/.cache/pip")
fi

setup=$(awk '/^```bash$/ {block=1; next} block && /^# 1\./ {found=1; next} found && !/^#/ {print; exit}' README.md)
in_debian() {
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
    bash -euo pipefail -c "cd /home/user/llm-deploy && $1"
}
# shellcheck disable=SC2016 # expanded inside the chroot
in_debian '. /etc/os-release; echo "$PRETTY_NAME, $(python3 --version)"'
# without python3-pip there is no pip at all; with it, pip refuses (externally-managed-environment)
if refusal=$(in_debian 'python3 -m pip install -e .' 2>&1); then
  echo "stock Debian installed the package outside a virtual environment: this check is not testing a stock system" >&2
  exit 1
fi
echo "plain pip install, refused as expected: ${refusal##*$'\n'}"
start=$SECONDS
in_debian "$setup" >"$copy/setup.log" 2>&1 || { cat "$copy/setup.log"; exit 1; }
echo "README command 1 on stock Debian 12: ok in $((SECONDS - start)) s: $setup"
LLM_DEPLOY_CHROOT="$root" LLM_DEPLOY_REPO=/home/user/llm-deploy LLM_DEPLOY_BIN_DIR=/home/user/llm-deploy/.venv/bin \
  "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider tests/test_usage_errors.py
