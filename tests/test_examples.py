"""The hello-world examples (pika, aio-pika) run unchanged against leveret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(("script", "expected"), [
    ("hello_pika.py", "Received b'Hello World!'"),
    ("hello_aio_pika.py", "b'Hello World!'"),
])
def test_example_runs(leveret_broker, script: str, expected: str) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), leveret_broker.url],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
