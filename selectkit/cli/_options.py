"""Every option shared by several commands, declared once (one alias per column role).

A command takes ``id_col: IdCol = "id"``; the flag, its help and its checks live here, so the
same flag reads the same in every ``--help``.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from selectkit import textcap

Output = Annotated[
    str,
    typer.Option(
        "-o",
        "--output",
        help="Output file (.parquet, .jsonl, .csv) or '-' for JSON Lines on stdout.",
    ),
]
FolderOutput = Annotated[
    str,
    typer.Option(
        "-o",
        "--output",
        help="Output file (.parquet, .jsonl, .csv), '-' for JSON Lines on stdout, or DIR/ for a "
        "dataset folder (one Parquet part per input shard; see --resume).",
    ),
]
Json = Annotated[
    bool, typer.Option("--json", help="Print the run summary as JSON on stdout (stdout = data).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print as JSON on stdout.")]
Seed = Annotated[
    int, typer.Option("--seed", min=0, help="Seed for every random choice (recorded).")
]
Threads = Annotated[
    Optional[int], typer.Option("--threads", min=1, help="BLAS threads (default: all cores).")
]
MaxChars = Annotated[
    int, typer.Option("--max-chars", min=1, help=textcap.MAX_CHARS_HELP, show_default=True)
]
OnLong = Annotated[str, typer.Option("--on-long", help=textcap.ON_LONG_HELP)]
InputFormat = Annotated[
    Optional[str],
    typer.Option(
        "--input-format",
        help="Format of '-' (stdin; default jsonl) or of inputs without a known extension: "
        "jsonl, csv, parquet or npy.",
    ),
]

# column roles: one flag and one help text each
IdCol = Annotated[
    str,
    typer.Option(
        "--id-col",
        help="Column with each row's id, joining the inputs (row numbers when absent).",
    ),
]
EmbeddingCol = Annotated[
    str,
    typer.Option(
        "--embedding-col",
        "--vector-col",
        help="Column with the vectors (list of float), e.g. gradient from `scores --gradients`.",
    ),
]
LabelCol = Annotated[
    str,
    typer.Option(
        "--label-col",
        help='Column with the class labels (null = no label; -1 and "" are labels); '
        "'none' ignores labels.",
    ),
]
ClusterCol = Annotated[str, typer.Option("--cluster-col", help="Column with cluster ids.")]
ScoreCol = Annotated[
    str,
    typer.Option(
        "--score-col", help="Column with a per-row score (ccs, topk; sensitivity reads --loss-col)."
    ),
]
ProbaCol = Annotated[
    str, typer.Option("--proba-col", help="Column with class probabilities (list of float).")
]
ProbaMcCol = Annotated[
    str,
    typer.Option(
        "--proba-mc-col", help="Column with Monte-Carlo probabilities (list of lists of float)."
    ),
]
GroupCol = Annotated[str, typer.Option("--group-col", help="Column with group names.")]
TextCol = Annotated[str, typer.Option("--text-col", help="Column with the text.")]
ModelCol = Annotated[str, typer.Option("--model-col", help="Column with model names.")]

GLOBAL_OPTIONS_NOTE = "Global options (-q, --debug) may be written before or after the command."


def key_values(items: list[str] | None, flag: str, example: str) -> dict[str, str]:
    """``KEY=VALUE`` items of a repeatable option as a dict (keys with ``-`` read as ``_``);
    anything else is a usage error naming ``flag`` and showing ``example``."""
    from selectkit.errors import SelectkitUsageError

    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SelectkitUsageError(f"{flag} {item!r} is not KEY=VALUE, e.g. {flag} {example}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


# where the work runs (selectkit.engine); declared once for every scaled-out command
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Where the work runs: local (this machine) or ray (a Ray cluster; "
        "pip install 'selectkit[ray]'). Same output bytes either way.",
    ),
]
RayAddressOpt = Annotated[
    Optional[str],
    typer.Option(
        "--ray-address",
        help="Ray cluster to run on (host:port); default $RAY_ADDRESS, else a local Ray instance.",
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="With a folder output (-o DIR/): reuse the parts an interrupted run finished; "
        "refused if the inputs or parameters changed.",
    ),
]
