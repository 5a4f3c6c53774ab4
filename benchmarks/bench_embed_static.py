"""``-e static`` (MiniLM distilled to token vectors) against hashing, MiniLM and a model2vec
peer, on labelled real text (issue 14 part 2), in one run.

Corpora (all offline): Rotten Tomatoes snippets (3 labels: fresh / rotten / plot) and the
Debian fortunes (categories with >= 10 quotes) from data_samples/, and WordNet 3.0 glosses
(`apt-get install wordnet-base`; short definitions labelled by their 45 lexicographer files,
e.g. noun.animal, verb.motion; skipped when absent). Each corpus is cut to ``--docs`` texts
(seeded sample), embedded once per embedder, and scored by

- 5-fold logistic-regression accuracy (stratified, shuffled folds; ``--lr-seeds`` fold seeds,
  1 by default as it is the slowest score on a busy 2-core machine),
- 10-NN accuracy (cosine, the same folds),
- k-means NMI (k = the number of labels, k-means++ seeds 0..2: mean +- sd).

Speed: docs/s of ``embed`` (after ``fit``, after a warm-up batch; the hashing fit is timed
apart) on 10,000 and ``--speed-docs`` WordNet glosses, on ``--threads`` threads.

    nice -n 10 /path/to/python benchmarks/bench_embed_static.py            # ~4 min on 2 cores
    ... --skip minilm,model2vec --weightings log-rank,sif,none             # pick the weighting

Results: a table on stdout and benchmarks/out/bench_embed_static.json. Needs the [models]
extra and scattertext (the static build) and minilm; model2vec with skeletoken (its `distill`
extra, `pip install model2vec skeletoken`) only for its arm (skipped if absent).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
import numpy as np

WORDNET = Path("/usr/share/wordnet")


def wordnet_glosses() -> tuple[list[str], list[str]]:
    """Every synset's definition (examples dropped) and its lexicographer file number."""
    texts, labels = [], []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(WORDNET / f"data.{pos}", encoding="latin-1") as fh:
            for line in fh:
                if line.startswith(" ") or "|" not in line:
                    continue
                head, gloss = line.split("|", 1)
                texts.append(gloss.split('; "')[0].strip())
                labels.append(head.split()[1])
    return texts, labels


def corpora(n: int, seed: int = 0) -> dict[str, tuple[list[str], np.ndarray]]:
    import polars as pl

    out = {}
    for name in ("rotten_tomatoes", "fortunes"):
        df = pl.read_ndjson(C.REPO / "data_samples" / f"{name}.jsonl")
        out[name] = (df["text"].to_list(), df["label"].to_numpy())
    if (WORDNET / "data.noun").is_file():
        texts, labels = wordnet_glosses()
        out["wordnet"] = (texts, np.asarray(labels))
    rng = np.random.default_rng(seed)
    for name, (texts, labels) in list(out.items()):
        keep = rng.permutation(len(texts))[:n]
        labels = labels[keep]
        names, counts = np.unique(labels, return_counts=True)
        ok = np.isin(labels, names[counts >= 10])
        out[name] = ([texts[i] for i in keep[ok]], labels[ok])
    return out


def scores(x: np.ndarray, y: np.ndarray, seeds=(0, 1, 2), lr_seeds=1) -> dict[str, float]:
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import normalized_mutual_info_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    lr, knn, nmi = [], [], []
    for s in seeds:
        folds = StratifiedKFold(5, shuffle=True, random_state=s)
        if s < lr_seeds:  # the slowest score: fewer fold seeds on a busy machine
            clf = LogisticRegression(C=10.0, tol=1e-3, max_iter=300)
            lr.append(cross_val_score(clf, x, y, cv=folds).mean())
        knn.append(
            cross_val_score(KNeighborsClassifier(10, metric="cosine"), x, y, cv=folds).mean()
        )
        k = len(np.unique(y))
        km = KMeans(k, n_init=1, random_state=s).fit(x)
        nmi.append(normalized_mutual_info_score(y, km.labels_))
    out = {}
    for name, vals in (("lr_acc", lr), ("knn_acc", knn), ("nmi", nmi)):
        out[name] = float(np.mean(vals))
        out[name + "_sd"] = float(np.std(vals))
    return out


def model2vec_peer():
    """model2vec's own distillation of the same installed MiniLM (256-d PCA, its defaults)."""
    from model2vec.distill import distill_from_model

    from selectkit.embed.models import load_minilm

    st = load_minilm()
    m = distill_from_model(st[0].auto_model, st.tokenizer, pca_dims=256)

    class Peer:
        name = "model2vec"

        def fit(self, texts):
            return self

        def embed(self, texts):
            return np.asarray(m.encode(list(texts)), dtype=np.float32)

    return Peer()


def make(name: str):
    from selectkit.embed import make_embedder

    if name.startswith("static-"):
        from selectkit.embed.static import StaticEmbedder

        return StaticEmbedder(weighting=name.split("-", 1)[1])
    if name == "model2vec":
        return model2vec_peer()
    return make_embedder(name)


def speed(model, texts: list[str], batch: int = 8192) -> tuple[float, float]:
    """(fit seconds, docs/s of embed in batches)."""
    t0 = time.perf_counter()
    model.fit(texts[:100_000])
    fit_s = time.perf_counter() - t0
    model.embed(texts[:256])
    t0 = time.perf_counter()
    for start in range(0, len(texts), batch):
        model.embed(texts[start : start + batch])
    return fit_s, len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=3000, help="texts per corpus for quality")
    ap.add_argument("--speed-docs", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr-seeds", type=int, default=1, help="fold seeds for the LR score")
    ap.add_argument("--weightings", default="log-rank")
    ap.add_argument("--skip", default="", help="comma list of embedders to skip")
    ap.add_argument("--corpora", default="rotten_tomatoes,fortunes,wordnet")
    args = ap.parse_args()
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))
    from threadpoolctl import threadpool_limits

    rep = C.env_report()
    C.print_env(rep)
    skip = set(filter(None, args.skip.split(",")))
    arms = ["hashing", *(f"static-{w}" for w in args.weightings.split(",")), "model2vec", "minilm"]
    arms = [a for a in arms if a not in skip]
    data = {k: v for k, v in corpora(args.docs).items() if k in args.corpora.split(",")}
    speed_texts = None
    if (WORDNET / "data.noun").is_file():
        texts, _ = wordnet_glosses()
        rng = np.random.default_rng(1)
        speed_texts = [texts[i] for i in rng.permutation(len(texts))[: args.speed_docs]]
    results, rows = [], []
    with threadpool_limits(args.threads):
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
        for arm in arms:
            t0 = time.perf_counter()
            try:
                model = make(arm)
            except Exception as exc:  # a peer that cannot be had here is reported, not fatal
                print(f"{arm}: skipped ({type(exc).__name__}: {exc})")
                continue
            load_s = time.perf_counter() - t0
            row = {"embedder": arm, "load_s": load_s}
            if speed_texts is not None and arm != "minilm":
                for n in sorted({10_000, args.speed_docs}):
                    fit_s, dps = speed(model, speed_texts[:n])
                    row[f"docs_per_s_{n}"], row[f"fit_s_{n}"] = dps, fit_s
            for name, (texts, labels) in data.items():
                t0 = time.perf_counter()
                model.fit(texts)
                x = model.embed(texts)
                emb_s = time.perf_counter() - t0
                if arm == "minilm":
                    row["docs_per_s_quality"] = len(texts) / emb_s
                s = scores(x, labels, lr_seeds=args.lr_seeds)
                results.append({**row, "corpus": name, "n": len(texts), **s})
                rows.append(
                    [name, len(texts), arm]
                    + [f"{s[m]:.3f}±{s[m + '_sd']:.3f}" for m in ("lr_acc", "knn_acc", "nmi")]
                    + [C.fmt(row.get("docs_per_s_10000", row.get("docs_per_s_quality")), 0)]
                    + [C.fmt(row.get(f"docs_per_s_{args.speed_docs}"), 0)]
                )
                print(rows[-1], flush=True)
    heads = [
        "corpus",
        "n",
        "embedder",
        "LR acc",
        "10-NN acc",
        "NMI",
        "docs/s 10k",
        f"docs/s {args.speed_docs // 1000}k",
    ]
    print(C.table(heads, rows))
    C.write_json("bench_embed_static", {"env": rep, "args": vars(args), "results": results})


if __name__ == "__main__":
    main()
