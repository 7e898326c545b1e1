"""Every option of every `ryot` subcommand and every `--ryot-*` pytest option says what it does
and, where it has one, its default; `ryot --version`."""

from __future__ import annotations

import argparse
import importlib.metadata

import pytest

from ryot import cli, pytest_plugin


def parsers(parser: argparse.ArgumentParser, name: str = "ryot"):
    """The parser and every subcommand's, walked through argparse's actions."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, f"{name} {sub_name}")


def shows_default(help_text: str, default) -> bool:
    return default in (None, False, [], argparse.SUPPRESS) or "default" in help_text


def test_every_option_of_every_subcommand_has_a_help_with_its_default():
    found = list(parsers(cli.build_parser()))
    assert [name for name, _ in found] == [
        "ryot",
        "ryot stage3a",
        "ryot report",
        "ryot serve",
        "ryot prepare-text",
    ]
    for name, parser in found:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{where}: no help"
            assert shows_default(action.help, action.default), f"{where}: default not shown"
        parser.format_help()  # every %(default)s expands


def test_stage3a_help_names_config_and_out_with_their_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["stage3a", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--config PATH the experiment's config YAML (default: configs/stage3a.yaml)" in text
    assert "(default: reports/stage3a)" in text


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"ryot {importlib.metadata.version('ryot')}"


class _Options:
    """A stand-in for pytest's parser and group: records every addoption."""

    def __init__(self):
        self.options: list[tuple[tuple[str, ...], dict]] = []

    def getgroup(self, *args, **kwargs):
        return self

    def addoption(self, *names, **kwargs):
        self.options.append((names, kwargs))


def test_every_pytest_option_has_a_help_with_its_default():
    recorded = _Options()
    pytest_plugin.pytest_addoption(recorded)
    names = [n for names, _ in recorded.options for n in names]
    assert "--gpu" in names and all(n == "--gpu" or n.startswith("--ryot-") for n in names)
    for names, kwargs in recorded.options:
        text = kwargs.get("help") or ""
        assert text.strip(), f"{names[0]}: no help"
        assert shows_default(text, kwargs.get("default")), f"{names[0]}: default not shown"
