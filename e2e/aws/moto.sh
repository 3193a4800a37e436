#!/usr/bin/env bash
# moto (the AWS emulator) for howdah's end-to-end tests — TEST TOOLING.
#
#   e2e/aws/moto.sh install   create the venv and install the pinned moto[server]
#                             (skipped when that version is already there);
#                             prints the moto_server path
#   e2e/aws/moto.sh path      print the moto_server path, or fail saying how to install
#
# The venv is $HOWDAH_MOTO_VENV, default $HOME/.cache/howdah/moto-venv.
# Python is $HOWDAH_PYTHON, default python3 (3.9 or newer).
# The tests find moto_server through HOWDAH_MOTO_SERVER:
#   HOWDAH_MOTO_SERVER="$(e2e/aws/moto.sh path)" cargo test -p howdah-aws-proxy
set -euo pipefail

MOTO_VERSION="5.2.5"
VENV="${HOWDAH_MOTO_VENV:-${HOME:?HOME is not set; set HOWDAH_MOTO_VENV}/.cache/howdah/moto-venv}"
PYTHON="${HOWDAH_PYTHON:-python3}"
SERVER="$VENV/bin/moto_server"

die() {
    echo "moto.sh: $*" >&2
    exit 1
}

installed_version() {
    [[ -x "$VENV/bin/python" ]] || return 1
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null
}

cmd_install() {
    if [[ "$(installed_version || true)" == "$MOTO_VERSION" && -x "$SERVER" ]]; then
        echo "moto.sh: moto $MOTO_VERSION is already installed in $VENV" >&2
        echo "$SERVER"
        return
    fi
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3 (with venv) or set HOWDAH_PYTHON"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "moto.sh: creating venv $VENV" >&2
        mkdir -p "$(dirname "$VENV")"
        "$PYTHON" -m venv "$VENV" || die "could not create a venv with $PYTHON (on Debian: apt-get install python3-venv)"
    fi
    echo "moto.sh: installing moto[server]==$MOTO_VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2 \
        || die "pip could not install moto[server]==$MOTO_VERSION (is PyPI reachable?)"
    [[ -x "$SERVER" ]] || die "moto installed, but $SERVER is missing"
    [[ "$(installed_version)" == "$MOTO_VERSION" ]] || die "expected moto $MOTO_VERSION in $VENV, found $(installed_version || echo none)"
    echo "$SERVER"
}

cmd_path() {
    [[ -x "$SERVER" ]] || die "moto_server is not installed in $VENV; run: e2e/aws/moto.sh install"
    echo "$SERVER"
}

case "${1:-}" in
    install) cmd_install ;;
    path) cmd_path ;;
    *) die "usage: moto.sh install | path" ;;
esac
