"""Entry point of ``bss2-calib``: the click group, logging, and one-line errors.

Library exceptions (anything that is a ValueError, OSError or one of the
project's error classes) become a single ``Error: ...`` line on stderr and a
non-zero exit; a traceback would be a bug.
"""
import logging
import sys

import click

from bss2_calib.chipsim import __version__
from bss2_calib.chipsim.errors import ChipError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (ChipError, ValueError, OSError, LookupError, RuntimeError) as err:
            raise click.ClickException(_one_line(err)) from None


def _one_line(err):
    text = str(err).strip().splitlines()
    msg = text[0] if text else type(err).__name__
    return msg


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bss2-calib")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def main(verbose, quiet):
    """Calibrate, characterize and run simulated BrainScaleS-2 chips."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


# Subcommands live in one module each and register themselves on import.
from . import cmd_chip  # noqa: E402,F401
from . import cmd_infer  # noqa: E402,F401
from . import cmd_characterize  # noqa: E402,F401
from . import cmd_report  # noqa: E402,F401
from . import cmd_run  # noqa: E402,F401
from . import cmd_store  # noqa: E402,F401
from . import cmd_verify  # noqa: E402,F401
from . import cmd_profile  # noqa: E402,F401
from .cmd_fleet import fleet  # noqa: E402

main.add_command(fleet)
