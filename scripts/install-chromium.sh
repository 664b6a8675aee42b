#!/usr/bin/env bash
# `make test`: the browser test drives Debian's chromium. Installs it when it is missing, with
# apt-get as root or through sudo; otherwise says what to install.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) == 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo)
else
    echo "install-chromium: chromium is missing and this user cannot install packages;" \
        "install Debian's 'chromium' package (or set CHROMIUM_BIN to a Chromium binary)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no apt-get here; install Chromium and set CHROMIUM_BIN to it" >&2
    exit 1
fi
echo "install-chromium: installing Debian's chromium for the browser test"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
