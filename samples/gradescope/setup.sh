#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image. It installs backcheck
# in a virtual environment of its own (/autograder/venv, which run_autograder uses), from the wheel
# in the autograder zip, or from backcheck's source folder if the zip holds that instead.
#
# AUTOGRADER_ROOT stands in for /autograder, to try the autograder on your own machine.
set -euo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
source="$root/source"

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "setup.sh: backcheck needs Python 3.10 or later: choose an Ubuntu 22.04 (or later) base image" >&2
    exit 1
fi
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then  # Ubuntu's python3 comes without venv
    export DEBIAN_FRONTEND=noninteractive
    apt-get update && apt-get install -y python3-venv python3-pip
fi
python3 -m venv "$root/venv"

wheel=$(ls "$source"/backcheck-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$wheel" ]; then
    "$root/venv/bin/pip" install "$wheel"
elif [ -f "$source/backcheck/pyproject.toml" ]; then
    "$root/venv/bin/pip" install "$source/backcheck"
else
    echo "setup.sh: the autograder zip holds no backcheck-*.whl and no backcheck/ source folder" >&2
    exit 1
fi
"$root/venv/bin/backcheck" --version
