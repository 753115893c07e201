#!/bin/sh
# Install shoal from the wheelhouse archive, offline, into its own virtual environment.
# Usage: install_wheelhouse.sh PYTHON PREFIX ARCHIVE MARKER
set -eu
python=$1
prefix=$2
archive=$3
marker=$4
wheels="$prefix/wheelhouse"
venv="$prefix/venv"
rm -rf "$wheels"
mkdir -p "$wheels"
tar -xf "$archive" -C "$wheels"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip="$venv/bin/python -m pip --disable-pip-version-check --no-input"
# dependencies as needed, then shoal itself again (its version does not change between builds)
$pip install --quiet --no-index --find-links "$wheels" shoal
$pip install --quiet --no-index --no-deps --force-reinstall "$wheels"/shoal-*.whl
"$venv/bin/shoald" --version
rm -f "$venv"/.shoal-wheelhouse-*
touch "$marker"
