#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: Debian packages via
# apt (only when run as root; otherwise it says what is missing and the tests
# that need them skip with a clear message), and npm packages into each test's
# own folder (from its package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

# command-or-file → Debian package
declare -A want=(
  [simavr]=simavr
  [/usr/include/simavr/sim_avr.h]=libsimavr-dev
  [/usr/include/libelf.h]=libelf-dev
  [avr-gcc]=gcc-avr
  [/usr/lib/avr/include/avr/io.h]=avr-libc
  [chromium]=chromium
  [qemu-aarch64-static]=qemu-user-static
  [mosquitto]=mosquitto
  [nats-server]=nats-server
  [tmux]=tmux
  [socat]=socat
)

missing=()
for k in "${!want[@]}"; do
  if [[ $k == /* ]]; then [[ -e $k ]] && continue; else command -v "$k" >/dev/null 2>&1 && continue; fi
  missing+=("${want[$k]}")
done

if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A stale package list is the usual cause of "unable to locate package".
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test-deps: not root; missing ${missing[*]} (tests that need them will skip)" >&2
  fi
fi

# npm packages live beside the tests that use them.
if command -v npm >/dev/null 2>&1; then
  while IFS= read -r lock; do
    dir=$(dirname "$lock")
    if [[ ! -d $dir/node_modules ]] || [[ $lock -nt $dir/node_modules ]]; then
      echo "test-deps: npm ci in $dir"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done < <(git ls-files '*package-lock.json' 2>/dev/null || true)
fi
