"""The first hour of a user: the README's set-up puts ``leveret`` on the PATH, every ``leveret``
command line in the README, docs/ and the examples' READMEs is one the command accepts, and
``make run`` installs the broker alone while ``make test`` adds the test and dev tools."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from leveret.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "examples").rglob("README.md"))]


def shell_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, command) of each line of a ```sh block, continuation lines joined."""
    found, fence, lines = [], None, path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"\s*```(\w*)", lines[i])
        if match:
            fence = None if fence is not None else match.group(1)
        elif fence in ("sh", "bash", "shell", "console"):
            number, command = i + 1, lines[i]
            while command.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command.rstrip()[:-1] + " " + lines[i].strip()
            found.append((number, command.strip()))
        i += 1
    return found


def leveret_lines() -> list[tuple[str, str]]:
    return [(f"{path.relative_to(ROOT)}:{number}", command)
            for path in DOCS for number, command in shell_lines(path)
            if command.startswith("leveret ")]


def arguments(command: str) -> list[str]:
    """The arguments of a documented command line: without its comment, a trailing ``&``
    and the optional ``[...]`` groups of a synopsis."""
    words = shlex.split(command, comments=True)
    text = shlex.join(words[1:])
    while True:  # innermost groups first: [--amqps-port N --tls-cert PEM [--tls-ca PEM]]
        text, n = re.subn(r"'?\[[^\[\]]*\]'?", "", text)
        if not n:
            break
    args = shlex.split(text)
    return args[:-1] if args and args[-1] == "&" else args


def test_the_documents_have_leveret_command_lines() -> None:
    where = {line.split(":")[0] for line, _ in leveret_lines()}
    assert {"README.md", "docs/cli.md", "docs/events.md", "examples/orders/README.md"} <= where


@pytest.mark.parametrize(("where", "command"), leveret_lines(),
                         ids=[line for line, _ in leveret_lines()])
def test_documented_command_lines_parse(where: str, command: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    args = arguments(command)
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exit:  # --help, or an error argparse printed
        assert exit.code == 0, f"{where}: {command!r}: {capsys.readouterr().err}"
        return
    assert getattr(parsed, "func", None) is not None, f"{where}: {command!r} runs nothing"


def test_the_readme_activates_the_venv_before_the_first_leveret_command() -> None:
    commands = [command for _, command in shell_lines(ROOT / "README.md")]
    first = next(i for i, command in enumerate(commands) if command.startswith("leveret "))
    before = commands[:first]
    assert any(command.startswith("make install") for command in before), before
    assert any(command.startswith(". .venv/bin/activate") for command in before), before
    readme = (ROOT / "README.md").read_text()
    assert "pipx install ." in readme and "pip install --user ." in readme


# -- the Makefile: which target installs what --------------------------------------------------

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def dry_run(target: str, venv: Path) -> str:
    """The commands ``make TARGET`` would run with this virtual environment."""
    return subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
                          capture_output=True, text=True, timeout=30, check=True).stdout


@needs_make
@pytest.mark.parametrize("target", ["run", "install"])
def test_make_run_installs_the_runtime_alone(target: str, tmp_path: Path) -> None:
    commands = dry_run(target, tmp_path / "venv")
    assert "-m venv" in commands and "pip install --quiet -e .\n" in commands
    assert "[test" not in commands and "dev]" not in commands


@needs_make
@pytest.mark.parametrize("target", ["test", "lint"])
def test_make_test_installs_the_tools_from_a_fresh_clone(target: str, tmp_path: Path) -> None:
    commands = dry_run(target, tmp_path / "venv")
    assert "-m venv" in commands and "-e '.[test,dev]'" in commands


@needs_make
def test_make_test_after_make_run_adds_the_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed-runtime").touch()  # what `make run` leaves
    commands = dry_run("test", venv)
    assert "-m venv" not in commands and "-e '.[test,dev]'" in commands
    (venv / ".installed-tools").touch()
    assert "pip install" not in dry_run("test", venv)
