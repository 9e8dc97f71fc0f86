"""Entry point of ``bss2-calib``: the click group, logging, one-line errors, and the subcommands.

Library exceptions (anything that is a ValueError, OSError or one of the
project's error classes) become a single ``Error: ...`` line on stderr and a
non-zero exit; a traceback would be a bug. Under ``--json`` the error is also
printed on stdout as ``{"error": "..."}`` (same exit code).

Each subcommand is defined in its own module (``cmd_*.py``) and added to the
group here, explicitly; those modules do not import this one.
"""
import click

from bss2_calib.chipsim import __version__
from bss2_calib.chipsim.errors import ChipError

from . import (cmd_characterize, cmd_chip, cmd_fleet, cmd_infer, cmd_profile, cmd_report, cmd_run, cmd_store,
               cmd_verify)
from .common import configure_logging, echo_json, one_line, remember_args, verbosity_options, wants_json


class _Group(click.Group):
    def parse_args(self, ctx, args):
        remember_args(ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise
            except (ChipError, ValueError, OSError, LookupError, RuntimeError) as err:
                raise click.ClickException(one_line(err)) from None
        except click.ClickException as err:
            if not wants_json(ctx):
                raise
            echo_json({"error": err.format_message(), "exit_code": err.exit_code})
            err.show()
            raise click.exceptions.Exit(err.exit_code) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bss2-calib")
@verbosity_options
@click.pass_context
def main(ctx):
    """Calibrate, characterize and run simulated BrainScaleS-2 chips.

    -v/-q are accepted before or after the subcommand's name; every
    subcommand takes --json (its output, and errors, as JSON on stdout).
    """
    configure_logging(ctx)


for _cmd in (cmd_chip.chip, cmd_run.run, cmd_store.list_cmd, cmd_store.show, cmd_verify.verify,
             cmd_characterize.characterize, cmd_report.report, cmd_infer.infer, cmd_profile.profile,
             cmd_fleet.fleet):
    main.add_command(_cmd)
