"""docs/plugins.md: the example package builds, installs and charges, exactly as written.

The package is installed for real — built by pip from its pyproject.toml into a fresh virtual
environment, found through its entry point — offline: the new environment sees this checkout
and the current environment's packages (a .pth file), and pip builds without isolation."""

import json
import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from tests.conftest import ROOT


def _example_files() -> dict[str, str]:
    """The files of the guide's "A plugin package" section, by the name in their first line."""
    guide = (ROOT / "docs" / "plugins.md").read_text()
    section = guide[guide.index("## A plugin package") : guide.index("- **Names are unique.**")]
    files = {}
    for block in re.findall(r"```(?:toml|python)\n(.*?)```", section, re.S):
        first, _, _ = block.partition("\n")
        files[first.removeprefix("# ").strip()] = block
    return files


def _settings_block() -> str:
    guide = (ROOT / "docs" / "plugins.md").read_text()
    section = guide[guide.index("## A plugin package") : guide.index("- **Names are unique.**")]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    return block


def test_the_guide_has_a_whole_package():
    assert set(_example_files()) == {"pyproject.toml", "acme_abonnement.py"}


def test_the_example_plugin_installs_and_charges(tmp_path: Path):
    package = tmp_path / "acme-abonnement"
    package.mkdir()
    for name, text in _example_files().items():
        (package / name).write_text(text)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True,
    ).strip())  # fmt: skip
    # this checkout first, then every package of the environment running the tests
    (site / "zz_outer.pth").write_text(f"{ROOT}\n{sysconfig.get_path('purelib')}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_NO_INDEX"] = "1"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-build-isolation", str(package)],
        check=True, env=env, capture_output=True, timeout=120,
    )  # fmt: skip

    config = tmp_path / "shop"
    subprocess.run([python, "-m", "abonnement", "init", str(config)], check=True, env=env,
                   capture_output=True)  # fmt: skip
    yaml = config / "abonnement.yaml"
    settings = _settings_block().split("\n", 1)[1]  # the guide's payments block
    yaml.write_text(yaml.read_text().replace(
        "  payments:\n    processor: test\n", settings, 1))  # fmt: skip
    assert "processor: acme" in yaml.read_text()

    def cli(*args: str) -> dict:
        done = subprocess.run([python, "-m", "abonnement", "--config", str(config), *args,
                               "--json"], env=env, capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    rows = {row["name"]: row for row in cli("plugins")["plugins"]}
    assert rows["acme"]["distribution"] == "acme-abonnement 0.1.0"
    assert rows["acme"]["registers"] == {"processors": ["acme"],
                                         "settings_schemas": ["payments.acme"]}  # fmt: skip
    assert cli("validate") == {"valid": True, "errors": [], "warnings": []}
    assert cli("apply", "--as-of", "2026-11-20")["created"] == ["ane-coffee"]
    result = cli("run", "--until", "2027-01-01")
    assert (result["invoice_count"], result["payments"]) == (2, {"succeeded": 2})
    payments = cli("payments", "list")
    assert [(p["invoice_number"], p["amount"], p["status"]) for p in payments] == [
        ("INV-00001", "25.00", "succeeded"), ("INV-00002", "25.00", "succeeded")]  # fmt: skip
    # charged through acme: the test processor never opened its ledger
    assert not (config / "test-processor-ledger.db").exists()
