#!/usr/bin/env bash
# Outputs of the shipped models on test2016, for checking that a refactoring changes nothing:
#   bash bench/behaviour_snapshot.sh OUT_DIR      (about 2 min on our 2 cores)
# then compare two snapshots: text and Pharaoh byte for byte, jsonl with floats within 1e-6:
#   python bench/compare_snapshots.py BEFORE_DIR AFTER_DIR
set -euo pipefail
out=${1:?usage: behaviour_snapshot.sh OUT_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
seqattn=${SEQATTN:-$here/.venv/bin/seqattn}
data=${DATA:-$here/../shared/data/multi30k}
mkdir -p "$out"
src=$data/test_2016_flickr.en ref=$data/test_2016_flickr.de
head -200 "$src" > "$out/src200.en"
head -200 "$ref" > "$out/ref200.de"
"$seqattn" -q translate -m en-de --beam 5 -i "$src" > "$out/translate.en-de.b5.txt"
"$seqattn" -q translate -m en-de-rnn --beam 5 -i "$out/src200.en" > "$out/translate.rnn.b5.txt"
"$seqattn" -q translate -m en-de --beam 1 -f tsv -i "$out/src200.en" > "$out/translate.greedy.tsv"
"$seqattn" -q translate -m en-de -f jsonl --attention --n-best 2 -i "$out/src200.en" \
  > "$out/translate.jsonl"
"$seqattn" -q align -m en-de "$src" "$ref" > "$out/align.en-de.pharaoh"
"$seqattn" -q align -m en-de --reverse-model de-en "$out/src200.en" "$out/ref200.de" \
  > "$out/align.both.pharaoh"
"$seqattn" -q align -m en-de-rnn "$out/src200.en" "$out/ref200.de" > "$out/align.rnn.pharaoh"
"$seqattn" -q align -m en-de -f jsonl --check "$out/src200.en" "$out/ref200.de" > "$out/align.jsonl"
"$seqattn" -q align -m en-de -a encoder -f jsonl "$out/src200.en" > "$out/selfattn.jsonl"
(cd "$out" && "$seqattn" -q evaluate -r "$ref" translate.en-de.b5.txt -f json) \
  | grep -v '"hyp"' > "$out/evaluate.json"
echo "snapshot in $out" >&2
