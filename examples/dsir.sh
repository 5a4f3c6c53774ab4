#!/usr/bin/env bash
# DSIR on the bundled samples: pick the documents that look like plot synopses.
# Target: 100 plot synopses. Raw pool: the other Rotten Tomatoes snippets (reviews and the
# remaining 135 synopses) plus 2,000 fortunes, as two gzip shards.
set -euo pipefail
out=$(mktemp -d)
grep -m 100 '"label": "plot"' data_samples/rotten_tomatoes.jsonl > "$out/target.jsonl"
grep -vxF -f "$out/target.jsonl" data_samples/rotten_tomatoes.jsonl | gzip -n > "$out/part-0.jsonl.gz"
gzip -nc data_samples/fortunes.jsonl > "$out/part-1.jsonl.gz"

selectkit select "$out"/part-*.jsonl.gz --strategy dsir --target "$out/target.jsonl" \
    --budget 135 --save-model "$out/model.npz" -o "$out/manifest.parquet"
selectkit apply "$out/manifest.parquet" "$out"/part-*.jsonl.gz -o "$out/selected.jsonl.gz"
echo "plot synopses: $(gzip -dc "$out"/part-*.jsonl.gz | grep -c '"label": "plot"') of" \
    "$(gzip -dc "$out"/part-*.jsonl.gz | wc -l) in the pool;" \
    "$(gzip -dc "$out/selected.jsonl.gz" | grep -c '"label":"plot"') of 135 selected"
selectkit inspect "$out/manifest.parquet" --json | python3 -c \
    'import json,sys; m=json.load(sys.stdin)["provenance"]["metrics"]; print({k: m[k] for k in ("kl_target_random", "kl_target_selected", "kl_reduction")})'

# Weigh again with the saved model (one pass, no refitting), top-k by weight:
selectkit select "$out"/part-*.jsonl.gz --strategy dsir --model "$out/model.npz" --top-k \
    --budget 10 -o "$out/top10.jsonl"
head -3 "$out/top10.jsonl"
echo "outputs in $out"
