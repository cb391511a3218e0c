#!/usr/bin/env bash
# Builds the static page into web/dist (open it from any static server): the jacob
# library for WebAssembly, its JavaScript glue from wasm-bindgen, KaTeX from
# web/node_modules (npm ci --prefix web), and the page's own files.
set -euo pipefail
cd "$(dirname "$0")"
cargo build -p jacob-web --release --target wasm32-unknown-unknown
rm -rf dist
mkdir -p dist/katex
wasm-bindgen --target web --no-typescript --out-dir dist/pkg \
  ../target/wasm32-unknown-unknown/release/jacob_web.wasm
cp index.html app.js worker.js style.css dist/
cp -r node_modules/katex/dist/katex.mjs node_modules/katex/dist/katex.min.css \
  node_modules/katex/dist/fonts dist/katex/
echo "built web/dist: serve it with, e.g., python3 -m http.server -d web/dist"
