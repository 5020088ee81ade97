#!/usr/bin/env bash
# keel's first command (README, Quick start): build keel, build the bundled
# fixture wheels, install them into a fresh virtual environment with keel,
# check the install file by file and run what it installed.
# Everything it makes is under target/demo/ (wheels, venv, cache).
# Needs: Rust (rust-toolchain.toml), python3 with venv. Stops at any error.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$repo"
demo=target/demo

step() { printf '\n==> %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "1/5 build keel (release; a first build takes a few minutes)"
run cargo build --release --locked --bin keel
keel="$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/keel"
run "$keel" --version

step "2/5 build the bundled fixture wheels into $demo/wheels"
rm -rf "$demo/wheels"
run cargo run -q --release --locked -p keel-fixtures -- build --latest "$demo/wheels"

step "3/5 create a fresh virtual environment $demo/venv"
rm -rf "$demo/venv"
if ! run python3 -m venv "$demo/venv"; then
    echo "error: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
fi

step "4/5 install the wheels with keel (cache: $demo/cache)"
run "$keel" install --venv "$demo/venv" --cache-dir "$demo/cache" "$demo"/wheels/*.whl
run "$keel" verify --venv "$demo/venv"

step "5/5 run the installed scripts"
run "$demo/venv/bin/keel-hello"
run "$demo/venv/bin/keel-many"

step "done: keel installed $(ls "$demo/wheels" | wc -l) wheels into $demo/venv"
