"""docs/python.md: every example runs, in order, and prints what its comments say."""

import contextlib
import io
import re

from tests.conftest import ROOT


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "python.md").read_text(), re.S)


def _expected(example: str) -> list[str]:
    return [m.strip() for m in re.findall(r"#\s*(.+)$", example, re.M)
            if not m.startswith("the ")]  # fmt: skip


def test_the_python_guide_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"workdir": str(tmp_path)}
    examples = _examples()
    assert len(examples) >= 4
    for example in examples:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(example, "docs/python.md", "exec"), namespace)
        assert out.getvalue().splitlines() == _expected(example), example
