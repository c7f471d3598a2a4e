"""Every command's --help exits 0 and ends with examples and exit codes; usage errors exit 2; one progress
flag (-q/--quiet) on every long command."""

from __future__ import annotations

import pytest

from aprqa.cli import build_parser, main
from aprqa.cli.help import EXAMPLES

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001 (argparse's own table)


def test_every_command_has_examples():
    assert sorted(EXAMPLES) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_0_with_examples_and_exit_codes(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:\n  aprqa " + command in out and "exit codes: 0" in out, out
    undocumented = [a.dest for a in build_parser()._subparsers._group_actions[0].choices[command]._actions
                    if not a.help and a.dest != "help"]
    assert undocumented == [], f"{command}: options without help text {undocumented}"


def test_top_level_help_and_usage_errors(capsys):
    assert main(["--help"]) == 0 and "exit codes:" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["compare", "only-one"]) == 2
    assert main(["nope"]) == 2
    assert main(["convert", "a", "b", "--quant", "q9"]) == 2
    capsys.readouterr()


@pytest.mark.parametrize("command", ["convert", "compare", "run"])
def test_one_progress_flag_name(command):
    p = build_parser()._subparsers._group_actions[0].choices[command]
    flags = {s for a in p._actions for s in a.option_strings}
    assert {"-q", "--quiet"} <= flags
