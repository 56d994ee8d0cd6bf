#!/bin/bash
# Does mapping our top-level folders under `edgecount.*` (setuptools package-dir) work with the
# tools we use? Builds a two-file project in a temporary directory with the same layout
# (edgecount/ plus gateway/ mapped to edgecount.gateway), installs it editable in both
# setuptools modes and reports, per tool, whether it follows. docs/architecture.md
# ("One import namespace") records the answer; re-run this when setuptools or mypy change.
#   usage: tools/namespace_probe.sh [path/to/mypy]
set -u
MYPY=${1:-$(pwd)/.venv/bin/mypy}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
mkdir edgecount gateway
cat > pyproject.toml <<'TOML'
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"
[project]
name = "nsprobe"
version = "0"
[project.scripts]
nsprobe = "edgecount.cli:main"
[tool.setuptools]
package-dir = {"edgecount" = "edgecount", "edgecount.gateway" = "gateway"}
packages = ["edgecount", "edgecount.gateway"]
[tool.mypy]
strict = true
files = ["edgecount", "gateway"]
TOML
touch edgecount/__init__.py edgecount/py.typed gateway/__init__.py
printf 'from edgecount.gateway.scan import zone\n\n\ndef main() -> None:\n    print(zone(3))\n' > edgecount/cli.py
printf 'def zone(n: int) -> str:\n    return "z" * n\n' > gateway/scan.py
printf 'from edgecount.gateway.scan import zone\n\n\ndef test_zone() -> None:\n    assert zone(2) == "zz"\n' > test_probe.py
python3 -m venv .venv >/dev/null
.venv/bin/python -m pip install -q pytest >/dev/null 2>&1
check() { if "${@:2}" >/dev/null 2>&1; then echo "  $1: follows"; else echo "  $1: FAILS"; fi; }
for mode in lenient strict; do
  .venv/bin/python -m pip install -q -e . --config-settings editable_mode=$mode >/dev/null 2>&1
  echo "editable_mode=$mode"
  check "console script" .venv/bin/nsprobe
  check "pytest from the checkout" .venv/bin/python -m pytest -q -p no:cacheprovider test_probe.py
  check "mypy --strict" "$MYPY" --python-executable .venv/bin/python
done
