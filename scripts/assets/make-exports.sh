#!/usr/bin/env bash
# Regenerates test/assets/exports/ (issue 11's fused, float16 and int32 GPT-2 test assets):
#   1. npx tsx scripts/assets/write-base-models.ts: the project's generated GPT-2 models (temp dir)
#   2. python3 scripts/assets/make-exports.py: onnxruntime's transformer optimizer and float16
#      tools fuse/convert them and write the assets with manifest.json
# Needs Python 3 with onnxruntime and onnx (PYTHON=/path/to/venv/bin/python, or a venv made here:
#   python3 -m venv /tmp/venv-assets && /tmp/venv-assets/bin/pip install onnxruntime onnx).
# Keep the venv outside the repository. Then run: npx vitest run test/onnx/assets.test.ts
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="${1:-$ROOT/test/assets/exports}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PYTHON" -c "import onnxruntime, onnx" || { echo "make-exports.sh: $PYTHON lacks onnxruntime/onnx (set PYTHON=...)" >&2; exit 1; }
cd "$ROOT"
npx tsx scripts/assets/write-base-models.ts "$TMP/bases"
rm -rf "$TMP/out"
"$PYTHON" scripts/assets/make-exports.py "$TMP/bases" "$TMP/out"
# Replace the assets as a whole (keeping README.md), so that a dropped asset does not linger.
mkdir -p "$OUT"
find "$OUT" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
cp -r "$TMP/out/." "$OUT/"
du -sh "$OUT"
