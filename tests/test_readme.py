"""The README's job file and command names against the real config loader and parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

try:  # Python 3.11+
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

from gpuseg import cli
from gpuseg.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"
COMMANDS = ("rfm", "fit", "assign", "choose-k", "profile", "drift", "report", "bench", "demo")


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _toml_blocks(text: str) -> list[str]:
    return re.findall(r"^```toml\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def _code(text: str) -> str:
    """Everything inside fenced blocks and inline code spans."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return "\n".join(fenced + re.findall(r"`([^`\n]+)`", rest))


def _commands_named(text: str) -> set[str]:
    """``gpuseg COMMAND`` where a code line or inline span starts with it."""
    return set(re.findall(r"^\s*gpuseg ([a-z][a-z-]*)", _code(text), flags=re.MULTILINE))


def test_readme_has_one_job_file():
    assert len(_toml_blocks(_readme())) == 1


@pytest.fixture
def job_file(tmp_path) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(_toml_blocks(_readme())[0], encoding="utf-8")
    return path


def test_job_file_is_valid_toml_with_a_table_per_step(job_file):
    document = tomllib.loads(job_file.read_text(encoding="utf-8"))
    tables = {key for key, value in document.items() if isinstance(value, dict)}
    assert tables <= set(COMMANDS)
    assert {"rfm", "fit", "assign"} <= tables


def test_job_file_options_are_accepted_by_every_command_it_configures(job_file):
    document = tomllib.loads(job_file.read_text(encoding="utf-8"))
    parser = cli.build_parser()
    for command in (key for key, value in document.items() if isinstance(value, dict)):
        options = load_config(job_file, command)
        assert options, command
        argv = [command, "--config", str(job_file)]
        # The CLI's own check: unknown options and bad values raise DataError naming the file.
        args = cli._apply_config(parser, parser.parse_args(argv), argv)
        for name in cli.REQUIRED.get(command, ()):
            assert getattr(args, name) is not None, (command, name)
        for key, value in options.items():
            assert getattr(args, key) == value, (command, key)


def test_job_file_fit_values_are_typed_as_on_the_command_line(job_file):
    parser = cli.build_parser()
    argv = ["fit", "--config", str(job_file)]
    args = cli._apply_config(parser, parser.parse_args(argv), argv)
    assert isinstance(args.k, int) and isinstance(args.seed, int)
    assert args.nan in ("error", "drop", "impute")


def test_readme_names_every_command():
    assert _commands_named(_readme()) >= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(_commands_named(_readme())))
def test_every_command_named_in_readme_exists(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0, f"'gpuseg {command} --help' exited {exc.value.code}"
    assert f"usage: gpuseg {command}" in capsys.readouterr().out
