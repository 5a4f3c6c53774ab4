#!/usr/bin/env bash
# Coreset and curation strategies on the bundled Rotten Tomatoes corpus (3,000 labelled snippets).
set -euo pipefail
corpus=${1:-data_samples/rotten_tomatoes.jsonl}
out=${2:-$(mktemp -d)}
mkdir -p "$out"
selectkit -q embed "$corpus" --keep label -o "$out/vectors.parquet"      # id, embedding, label
selectkit -q embed "$corpus" -o "$out/emb.parquet"                       # id, embedding
selectkit -q cluster "$out/emb.parquet" -k 30 -o "$out/clusters.parquet"

# training-dynamics difficulty scores, then CCS keeping 10% (beta chosen from the rate: 0.3)
selectkit -q scores "$out/vectors.parquet" --label-col label -o "$out/dyn.parquet"
selectkit select "$out/emb.parquet" "$out/dyn.parquet" --strategy ccs --score-col aum \
    --budget 10% -o "$out/ccs.parquet" --json
# the same budget by top-k difficulty (the baseline CCS fixes), for comparison
selectkit -q select "$out/emb.parquet" "$out/dyn.parquet" --strategy topk --score-col aum \
    --order low --budget 10% -o "$out/topk.parquet"

# sensitivity sampling with the losses from `scores`: weights land in the manifest
selectkit select "$out/emb.parquet" "$out/clusters.parquet" "$out/dyn.parquet" \
    --strategy sensitivity --loss-col loss --budget 300 -o "$out/sensitivity.parquet" --json

# balanced sampling down a 2-level k-means tree, and stratified sampling by cluster
selectkit -q select "$out/emb.parquet" --strategy balanced --levels 60,12 --budget 300 \
    -o "$out/balanced.parquet"
selectkit -q select "$out/emb.parquet" "$out/clusters.parquet" --strategy stratified \
    --allocation equal --budget 300 -o "$out/stratified.parquet"

# semantic dedup: no budget; what is dropped, and why, goes to a second file
selectkit select "$out/emb.parquet" "$out/clusters.parquet" --strategy semdedup \
    --threshold 0.9 -o "$out/kept.parquet" --emit-dropped "$out/dropped.parquet" --json
selectkit inspect "$out/ccs.parquet"
echo "outputs in $out"
