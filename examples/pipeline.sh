#!/usr/bin/env bash
# The CLI pipeline on the bundled corpus: embed -> select (two ways) -> apply -> inspect.
set -euo pipefail
corpus=${1:-data_samples/rotten_tomatoes.jsonl}
out=$(mktemp -d)
selectkit embed "$corpus" -o "$out/emb.parquet"
selectkit select "$out/emb.parquet" --strategy kcenter --budget 200 -o "$out/kcenter.parquet"
selectkit select "$out/emb.parquet" --strategy random --budget 5% --seed 7 -o "$out/random.parquet"
selectkit apply "$out/kcenter.parquet" "$corpus" -o "$out/subset.jsonl"
selectkit inspect "$out/kcenter.parquet"
echo "outputs in $out"
