import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from abonnement.cli import cli

ROOT = Path(__file__).parents[1]
SPEC = ROOT / "examples" / "spec"


def run(*args: str, env: dict | None = None) -> Result:
    """Run the CLI in-process; a crash (not a clean exit) fails the test with its traceback."""
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def run_json(*args: str) -> object:
    result = run(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def spec_config(tmp_path: Path) -> Path:
    """A writable copy of the spec's full config example."""
    target = tmp_path / "config"
    shutil.copytree(SPEC, target)
    return target
