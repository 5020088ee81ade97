#!/bin/sh
# Seeds fuzz/corpus/{wheel_reader,text_parsers} with keel's fixture wheels
# (bundled and hostile) and their .dist-info texts. Generated, not committed.
set -eu
cd "$(dirname "$0")"
cargo run -q --example seeds -- corpus
