"""The ``selectkit`` command line: a small root over one module per command.

Every command is a documented Python call (``selectkit.embed_file``, ``select_files``, ...);
its module only declares options and prints the summary. Errors cross one boundary
(:func:`selectkit.cli._run.guarded`), and usage errors, Click's and ours, read the same:
``error: ...`` on one line, exit 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from selectkit import interrupts
from selectkit._version import __version__
from selectkit.cli import _click as click
from selectkit.cli import (
    apply,
    cluster,
    demo,
    embed,
    inspect,
    kmq_weights,
    plan_filter,
    report,
    scores,
    select,
    strategies,
    stream,
)
from selectkit.cli._options import GLOBAL_OPTIONS_NOTE
from selectkit.cli._run import configure, guarded, stopped, stopped_outside_run, with_help_hint
from selectkit.console import stderr_console

#: options of the root that may also be written after the command (`select ... -q`)
GLOBAL_FLAGS = ("-q", "--quiet", "--debug")


def hoist_global_flags(args: Sequence[str]) -> list[str]:
    """``args`` with -q/--quiet/--debug moved before the command, wherever they were written
    (up to a ``--``, after which every token is data)."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
    rest = [a for a in args[:end] if a not in GLOBAL_FLAGS]
    return flags + rest + args[end:]


class SelectkitGroup(TyperGroup):
    """The root group: global flags anywhere; every usage error printed as one ``error:`` line."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        args = hoist_global_flags(sys.argv[1:] if args is None else args)
        prog_name = prog_name or "selectkit"  # also under `python -m selectkit`
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if click.NoArgsIsHelpError and isinstance(exc, click.NoArgsIsHelpError):
                # `selectkit` or `selectkit al` alone: the help, as a usage error
                # Typer has printed the help already (Click would not: print it then)
                if not getattr(exc.ctx.command, "rich_markup_mode", None):
                    click.echo(exc.ctx.get_help())
                return _exit(2, standalone_mode)
            message = exc.format_message()
            if exc.ctx is not None:
                with exc.ctx:
                    message = with_help_hint(message)
            stderr_console().print(
                f"[bold red]error:[/] {message}", soft_wrap=True, markup=True, highlight=False
            )
            return _exit(2, standalone_mode)
        except click.ClickException as exc:
            exc.show()
            return _exit(exc.exit_code, standalone_mode)
        except typer.Abort:
            return _exit(stopped(KeyboardInterrupt()), standalone_mode)
        if not standalone_mode:
            return result
        # Click returns an Exit's status in non-standalone mode; Typer turns a signal it caught
        # itself (while parsing, say) into a silent 130
        code = result if isinstance(result, int) else 0
        return _exit(stopped_outside_run(code) or code, standalone_mode)


def _exit(code: int, standalone_mode: bool) -> int:
    if standalone_mode:
        sys.exit(code)
    return code


app = typer.Typer(
    name="selectkit",
    cls=SelectkitGroup,
    help="Pick the subset of a corpus worth labelling, training on or evaluating with.\n\n"
    "Typical pipeline:  embed -> select -> apply.  Every command reads .parquet, .jsonl, .csv, "
    ".npy or '-' (stdin, JSON Lines) and writes by the output's extension ('-o -' = JSON Lines "
    "on stdout). Exit codes: 0 ok, 1 bad data or impossible request, 2 usage error, 70 internal "
    "error, 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP; a failed or stopped run leaves existing outputs "
    f"as they were. {GLOBAL_OPTIONS_NOTE}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"selectkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress bars or notes.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Global options: -q and --debug, before or after the command."""
    configure(quiet, debug)


# one module per command; each function is its command's whole CLI surface
app.command("embed")(guarded(embed.embed))
app.command("cluster")(guarded(cluster.cluster))
app.command(
    "select",
    cls=select.SelectCommand,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(guarded(select.select))
app.command("scores")(guarded(scores.scores))
app.command("apply")(guarded(apply.apply))
app.command("inspect")(guarded(inspect.inspect))
app.command("strategies")(guarded(strategies.strategies))
app.command("demo")(guarded(demo.demo))
app.command("report")(guarded(report.report))
app.command("kmq-weights")(guarded(kmq_weights.kmq_weights))
app.command("stream")(guarded(stream.stream))
app.command("plan-filter")(guarded(plan_filter.plan_filter))

from selectkit.cli.al import app as _al_app  # noqa: E402  (sub-apps: selectkit al / disco ...)
from selectkit.cli.disco import app as _disco_app  # noqa: E402
from selectkit.cli.weights import app as _weights_app  # noqa: E402

app.add_typer(_disco_app, name="disco")
app.add_typer(_al_app, name="al")
app.add_typer(_weights_app, name="weights")


def entrypoint() -> None:
    """Console-script entry point: signals unwind like Ctrl-C; bare ``selectkit`` exits 2."""
    from selectkit.engine.memory import tune_allocations
    from selectkit.io.provenance import set_invocation

    tune_allocations()
    interrupts.install()
    set_invocation(["selectkit", *sys.argv[1:]])
    try:
        app()
    except KeyboardInterrupt as exc:  # a signal outside a command's run (while importing, say)
        sys.exit(stopped(exc))
