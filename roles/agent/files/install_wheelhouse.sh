#!/bin/sh
# Install shoal from the wheelhouse archive, offline, into its own virtual environment.
# pip runs from its wheel in the archive, so the venv is made without pip (much faster).
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
fresh=no
if [ ! -x "$venv/bin/python" ]; then
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    fresh=yes
fi
set -- "$wheels"/pip-*.whl
pip="$venv/bin/python $1/pip --disable-pip-version-check --no-input"
$pip install --quiet --no-index --no-compile --find-links "$wheels" shoal
if [ "$fresh" = no ]; then
    # shoal's version does not change between builds of its source: reinstall it
    $pip install --quiet --no-index --no-compile --no-deps --force-reinstall "$wheels"/shoal-*.whl
fi
"$venv/bin/shoald" --version
rm -f "$venv"/.shoal-wheelhouse-*
touch "$marker"
