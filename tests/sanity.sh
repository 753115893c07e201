#!/usr/bin/env bash
# Quality gates of the shoal.swarm collection, from a temporary ansible_collections/shoal/swarm tree
# (ansible-test needs that layout; the repository is not one):
#   tests/sanity.sh            ansible-test sanity, then ansible-lint --profile production
#   tests/sanity.sh sanity     ansible-test sanity only      tests/sanity.sh lint   ansible-lint only
# SANITY_TESTS="compile yamllint" limits ansible-test to those tests; SANITY_OFFLINE=1 to the tests that
# need no Python packages (the others install pinned requirements once, into build/ansible-test/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv_bin=${VENV_BIN:-$root/.venv/bin}
export PATH="$venv_bin:$PATH"
what=${1:-all}
case "$what" in all | sanity | lint) ;; *) echo "usage: $0 [all|sanity|lint]" >&2; exit 2 ;; esac

tmp=$(mktemp -d /tmp/shoal-collection.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/ansible_collections/shoal/swarm
mkdir -p "$tree"
# The collection's files, tracked or new (not ignored); playbooks/collections only links back to the tree.
(cd "$root" && git ls-files -co --exclude-standard -- galaxy.yml README.md meta plugins roles playbooks extensions \
    | grep -v '^playbooks/collections/' | while read -r f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 cp --parents -p -t "$tree")
# The modules and plugins carry the collection's Apache-2.0 notice, not the GPLv3 header validate-modules looks for.
mkdir -p "$tree/tests/sanity"
for plugin in "$tree"/plugins/modules/*.py "$tree"/plugins/lookup/*.py; do
    echo "${plugin#"$tree"/} validate-modules:missing-gplv3-license"
done >"$tree/tests/sanity/ignore-$("$venv_bin/python" -c 'import ansible; print(".".join(ansible.__version__.split(".")[:2]))').txt"

# ansible-test keeps its virtual environments under ~/.ansible/test: give it a home in build/ (kept between
# runs), and pip from this Python's ensurepip instead of a get-pip.py download.
home=$root/build/ansible-test
mkdir -p "$home/.ansible/test/cache"
pip_version=$("$venv_bin/python" -c '
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version="3.11"))["pip"])')
shim='"""Offline stand-in for get-pip.py (shoal tests/sanity.sh): the pip bundled with this Python."""
import ensurepip

ensurepip.bootstrap(default_pip=False)
'
printf '%s' "$shim" >"$home/.ansible/test/cache/get_pip_${pip_version//./_}.py"
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}
status=0
if [ "$what" != lint ]; then
    tests=${SANITY_TESTS:-}
    if [ "${SANITY_OFFLINE:-0}" = 1 ] && [ -z "$tests" ]; then
        tests="action-plugin-docs compile empty-init ignores line-endings no-assert no-get-exception
               no-illegal-filenames no-smart-quotes replace-urlopen shebang symlinks use-compat-six"
    fi
    args=()
    for t in $tests; do args+=(--test "$t"); done
    echo "== ansible-test sanity (${tests:-all tests})"
    (cd "$tree" && HOME=$home ANSIBLE_HOME=$tmp/ansible "$venv_bin/ansible-test" sanity --python 3.11 --local \
        --color no "${args[@]}") || status=1
fi
if [ "$what" != sanity ]; then
    echo "== ansible-lint --profile production (roles, playbooks, extensions/molecule)"
    (cd "$tree" && HOME=$tmp ANSIBLE_HOME=$tmp/ansible ANSIBLE_COLLECTIONS_PATH=$tmp "$venv_bin/ansible-lint" --profile production \
        --offline --nocolor roles playbooks extensions) || status=1
fi
exit $status
