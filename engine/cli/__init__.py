"""The ``ce`` command: one click group, one module per command, loaded on first use.

User errors end in one ``Error: ...`` line on stderr and a non-zero exit; ``--debug``
(anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import errno
import importlib
import sys

import click

from ce.store.errors import CeError

COMMANDS = {
    "extract": "ce.cli.extract:extract",
    "ingest": "ce.cli.ingest:ingest",
    "query": "ce.cli.query:query",
    "compare": "ce.cli.compare:compare",
    "sweep": "ce.cli.compare:sweep",
    "neighbors": "ce.cli.neighbors:neighbors",
    "ood": "ce.cli.neighbors:ood",
    "attack": "ce.cli.attack:attack",
    "compress": "ce.cli.compress:compress",
    "finetune": "ce.cli.finetune:finetune",
    "report": "ce.cli.report:report",
    "run": "ce.cli.run:run",
    "bundle": "ce.cli.bundle:bundle",
    "export": "ce.cli.export:export",
    "models": "ce.cli.catalog:models",
    "reference": "ce.cli.catalog:reference",
    "datasets": "ce.cli.catalog:datasets",
    "demo": "ce.cli.demo:demo",
}


OS_FIXES = {
    errno.ENOENT: "; check the path",
    errno.EACCES: "; check its permissions, or use another path",
    errno.EPERM: "; check its permissions, or use another path",
    errno.EROFS: "; the file system is read-only: use another path (or --store)",
    errno.EISDIR: "; it is a folder: give a file",
    errno.ENOTDIR: "; a part of the path is a file, not a folder: check the path",
}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _command_path(argv: list[str]) -> str:
    """'ce NAME' for the command named on the command line (after the group's options)."""
    rest = iter(argv)
    for arg in rest:
        if arg == "--store":
            next(rest, None)
        elif not arg.startswith("-"):
            return f"ce {arg}" if arg in COMMANDS else "ce"
    return "ce"


class CeGroup(click.Group):
    """Loads command modules lazily and turns every failure into one line on stderr."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            from ce.store.errors import did_you_mean

            raise click.UsageError(f"no command {name!r}{did_you_mean(name, COMMANDS)}", ctx)
        return super().resolve_command(ctx, args)

    def main(self, args=None, prog_name=None, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        if debug:  # anywhere on the line, for every command: taken here, not by each command
            argv = [a for a in argv if a != "--debug"]
        try:
            rv = super().main(
                args=argv,
                prog_name=prog_name or "ce",
                standalone_mode=False,
                **{k: v for k, v in extra.items() if k != "standalone_mode"},
            )
        except click.UsageError as e:
            if debug:
                raise
            where = e.ctx.command_path if e.ctx else _command_path(argv)
            click.echo(f"Error: {_one_line(e.format_message())} (see '{where} --help')", err=True)
            sys.exit(2)
        except click.ClickException as e:
            if debug:
                raise
            click.echo(f"Error: {_one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except CeError as e:
            if debug:
                raise
            click.echo(f"Error: {_one_line(e)}", err=True)
            sys.exit(e.exit_code)
        except OSError as e:
            if debug:
                raise
            where = f" ({e.filename})" if e.filename else ""
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                click.echo(
                    f"Error: no space left on the device{where}; nothing was kept: free"
                    " space (or use another --store) and run the command again",
                    err=True,
                )
            else:
                fix = OS_FIXES.get(e.errno, "")
                click.echo(f"Error: {e.strerror or type(e).__name__}{where}{fix}", err=True)
            sys.exit(1)
        except (KeyboardInterrupt, click.Abort):
            click.echo("Aborted.", err=True)
            sys.exit(130)
        except Exception as e:  # a bug, not a user error: still one line unless --debug
            if debug:
                raise
            if type(e).__module__.lstrip("_").startswith("duckdb"):  # raised while results stream
                from ce.store.errors import error_line

                click.echo(f"Error: SQL error: {_one_line(error_line(e))}", err=True)
                sys.exit(1)
            click.echo(
                f"Error: internal error: {type(e).__name__}: {_one_line(e)}"
                " (run with --debug for the traceback)",
                err=True,
            )
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=CeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ce", prog_name="ce")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.option(  # read by common.store_option; the group does not import it (start-up time)
    "--store",
    "store_path",
    metavar="DIR",
    help="Store folder of the command (or set CE_STORE) [default: data/store]; a --store after"
    " the command name wins.",
)
def cli(debug: bool, store_path: str | None) -> None:
    """Compare the behaviour of compressed language models with their large originals.

    Extract per-example artifacts once into a Parquet store, then ask every comparison
    with SQL over the store.

    \b
    Example:
      ce extract --model bert-large --dataset squad2-dev
      ce --store lab-a query accuracy
      ce ingest errors bert_base.json --model bert-base --dataset squad2-dev
      ce compare
      ce query "select * from error_agreement() order by jaccard"
    """


def main() -> None:
    cli.main()
