"""Running the ``clanpulse`` command in-process, as the CLI tests do."""

from __future__ import annotations

from click.testing import CliRunner, Result

from clanpulse.cli import main


def clanpulse(*args: str, code: int = 0) -> Result:
    """Run the command; an unexpected exception is raised, the exit status checked."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, (result.exit_code, result.output)
    return result
