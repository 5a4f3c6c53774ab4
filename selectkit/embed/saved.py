"""A fitted embedder in a folder (``embed --save-model DIR`` / ``embed --model DIR``).

The hashing embedder fits its IDF weights and PCA on each corpus, so two runs live in two
vector spaces. Saving the fitted state lets a pool embedded today and new rows embedded next
week share one space. The folder holds ``embedder.json`` (the options and a fingerprint of the
arrays) and, for the hashing embedder, ``arrays.npz`` (the IDF weights, the PCA mean and
components). Model embedders (minilm, wordllama, static) have no fitted state: their folder records
the model and options (for static, the fingerprint of its token table), so a later run is
refused if it would use others. Nothing is pickled.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selectkit._version import __version__
from selectkit.embed.hashing import HashingEmbedder
from selectkit.errors import SelectkitError, SelectkitUsageError, option
from selectkit.io.write import atomic_folder

META_FILE = "embedder.json"
ARRAYS_FILE = "arrays.npz"
FORMAT = "selectkit-embedder"
FORMAT_VERSION = 1
#: the hashing embedder's fitted arrays (``mean`` and ``components`` are absent without a PCA)
HASHING_ARRAYS = ("idf_words", "idf_chars", "mean", "components")
#: hashing options that shape the vectors, restored as saved
HASHING_OPTIONS = ("dim", "sketch_dim", "n_buckets", "char_sizes", "char_weight", "pca_rows")


@dataclass(frozen=True)
class SavedEmbedder:
    """A saved embedder folder's metadata, read and checked (the arrays are read by ``load``)."""

    path: Path
    meta: dict[str, Any]

    @property
    def embedder(self) -> str:
        return str(self.meta["config"]["embedder"])

    @property
    def dim(self) -> int:
        return int(self.meta["config"]["dim"])

    @property
    def pooling(self) -> str | None:
        return self.meta["config"].get("pooling")

    @property
    def runtime(self) -> str | None:
        return self.meta["config"].get("runtime")

    def check_options(
        self,
        embedder: str | None,
        dim: int | None,
        pooling: str | None,
        runtime: str | None = None,
    ) -> None:
        """Refuse options that disagree with the saved embedder (usage error naming both)."""
        where = f"the embedder saved in '{self.path}'"
        if embedder is not None and embedder != self.embedder:
            raise SelectkitUsageError(
                f"{where} is {self.embedder!r}, not {embedder!r}; drop {option('embedder')} or "
                f"give a folder saved with {option('embedder', embedder)}"
            )
        if dim is not None and dim != self.dim:
            raise SelectkitUsageError(
                f"{where} has {self.dim} dimensions, not {dim}; drop {option('dim')} or save "
                f"another with {option('dim', dim)}"
            )
        if (
            pooling not in (None, "auto")
            and ("last" if pooling == "eos" else pooling) != self.pooling
        ):
            raise SelectkitUsageError(
                f"{where} pools with {self.pooling!r}, not {pooling!r}; drop {option('pooling')}"
            )
        if runtime is not None and runtime != (self.runtime or "torch"):
            raise SelectkitUsageError(
                f"{where} runs on {self.runtime or 'torch'!r}, not {runtime!r}; drop "
                f"{option('runtime')}"
            )

    def load(self) -> Any:
        """The ready embedder: the hashing embedder with its saved arrays (fingerprint checked),
        or the named model loaded from its package. Cost: reading ``arrays.npz`` (about
        8 MiB for the default hashing options) or loading the model."""
        if self.embedder != "hashing":
            from selectkit.embed.pipeline import make_embedder

            model = make_embedder(
                self.embedder, dim=self.dim, pooling=self.pooling, runtime=self.runtime
            )
            saved_print = self.meta["config"].get("model_fingerprint")
            if saved_print is not None and model.config().get("model_fingerprint") != saved_print:
                raise SelectkitError(
                    f"the {self.embedder} model built here (fingerprint "
                    f"{model.config().get('model_fingerprint')}) is not the one saved in "
                    f"'{self.path}' ({saved_print}): another model package version or recipe; "
                    f"install the one it was saved with or save the embedder again"
                )
            return model
        config = self.meta["config"]
        model = HashingEmbedder(
            dim=int(config["dim"]),
            sketch_dim=int(config["sketch_dim"]),
            n_buckets=int(config["n_buckets"]),
            char_sizes=tuple(int(s) for s in config["char_sizes"]),
            char_weight=float(config["char_weight"]),
            pca_rows=int(config["pca_rows"]),
        )
        arrays = _read_arrays(self.path / ARRAYS_FILE)
        try:
            for name in HASHING_ARRAYS:
                setattr(model, name, arrays.get(name))
            model.fit_rows = int(config["fit_rows"])
            if model.idf_words is None or model.idf_chars is None:
                raise KeyError("idf_words")
            if model.idf_words.shape != (model.n_buckets,):
                raise ValueError("idf_words")
            if model.components is not None and model.components.shape != (
                model.sketch_dim,
                model.dim,
            ):
                raise ValueError("components")
        except (KeyError, ValueError) as exc:
            raise SelectkitError(
                f"'{self.path / ARRAYS_FILE}' lacks or mis-shapes the array {exc.args[0]!r}; "
                f"save the embedder again with {option('save-model')}"
            ) from None
        if model.config()["model_fingerprint"] != config.get("model_fingerprint"):
            raise SelectkitError(
                f"'{self.path / ARRAYS_FILE}' does not match the fingerprint in "
                f"'{self.path / META_FILE}' (changed or damaged); save the embedder again with "
                f"{option('save-model')}"
            )
        return model


def read_saved(folder: str | Path) -> SavedEmbedder:
    """Read and check a saved embedder folder's metadata; raises ``SelectkitError`` naming the
    file and the fix when it is no such folder, unreadable or of another format version."""
    path = Path(folder)
    if path.is_file() and path.name == META_FILE:
        raise SelectkitUsageError(
            f"give the folder that holds {META_FILE}, not the file: {option('model', str(path.parent))}"
        )
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise SelectkitError(
            f"'{path}' is not a saved embedder (no {META_FILE}); make one with "
            f"`selectkit embed CORPUS -o OUT {option('save-model', str(path))}`"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise SelectkitError(f"'{meta_path}' is not valid JSON ({exc}); save it again") from None
    if (
        not isinstance(meta, dict)
        or meta.get("format") != FORMAT
        or meta.get("format_version") != FORMAT_VERSION
    ):
        raise SelectkitError(
            f"'{meta_path}' is not a version-{FORMAT_VERSION} {FORMAT} file; save the embedder "
            "again with this selectkit"
        )
    config = meta.get("config")
    needed = ("embedder", "dim", *HASHING_OPTIONS, "fit_rows")
    if not isinstance(config, dict) or "embedder" not in config or "dim" not in config:
        raise SelectkitError(f"'{meta_path}' has no embedder config; save the embedder again")
    if config["embedder"] == "hashing" and any(k not in config for k in needed):
        missing = next(k for k in needed if k not in config)
        raise SelectkitError(f"'{meta_path}' lacks the option {missing!r}; save it again")
    return SavedEmbedder(path, meta)


def check_save_target(folder: str | Path) -> Path:
    """Refuse a ``--save-model`` folder that cannot be written or would overwrite other data:
    it must be new, empty or an earlier saved embedder, in an existing folder (``save_embedder``
    replaces an earlier one only with the same embedder: a re-run)."""
    out = Path(folder)
    if out.exists():
        if not out.is_dir():
            raise SelectkitUsageError(
                f"{option('save-model')} '{out}' is a file; give a folder for the embedder"
            )
        extra = sorted(p.name for p in out.iterdir() if p.name not in (META_FILE, ARRAYS_FILE))
        if extra:
            raise SelectkitUsageError(
                f"{option('save-model')} folder '{out}' already holds other files ({extra[0]}, "
                "...); give a new or empty folder"
            )
    parent = out.resolve().parent
    if not parent.is_dir():
        raise SelectkitUsageError(
            f"{option('save-model')}: folder '{parent}' does not exist; create it first"
        )
    return out


def save_embedder(model: Any, folder: str | Path) -> Path:
    """Write a fitted embedder to ``folder`` (JSON + npz), atomically: inside an
    :func:`~selectkit.io.output_group` it is committed with the run's other outputs, so a
    failed run leaves any earlier folder as it was. Returns the folder."""
    out = check_save_target(folder)
    config = model.config()
    earlier = out / META_FILE
    if earlier.is_file():
        try:
            before = json.loads(earlier.read_text()).get("config", {})
        except (OSError, ValueError, AttributeError):
            before = {}
        if before != config:
            raise SelectkitUsageError(
                f"{option('save-model')} folder '{out}' already holds an embedder fitted on other "
                "data or with other options: replacing it would strand the vectors made with it; "
                f"give a new folder, or remove '{out}' first"
            )
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "selectkit_version": __version__,
        "config": config,
    }
    with atomic_folder(out) as tmp:
        if isinstance(model, HashingEmbedder):
            arrays = {n: getattr(model, n) for n in HASHING_ARRAYS if getattr(model, n) is not None}
            np.savez_compressed(tmp / ARRAYS_FILE, **arrays)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise SelectkitError(
            f"'{path}' is not a readable npz of float arrays ({exc}); save the embedder again "
            f"with {option('save-model')}"
        ) from None
