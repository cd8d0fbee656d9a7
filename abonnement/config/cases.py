"""Read the rule test files of a config (``*.test.yaml``) and run their cases."""

from __future__ import annotations

from pathlib import Path

from abonnement.config.loader import Config, _decode
from abonnement.config.yamlpos import load_document
from abonnement.errors import CaseError, Problem, YamlProblem
from abonnement.rules.testing import CaseResult, run_case

__all__ = ["run_test_files"]


def run_test_files(root: Path, config: Config) -> tuple[list[CaseResult], list[Problem]]:
    """Every case of every ``*.test.yaml`` under ``root``, in file order."""
    results: list[CaseResult] = []
    problems: list[Problem] = []
    catalog = config.catalog
    files = sorted(p for p in root.rglob("*.test.y*ml") if p.is_file())
    for path in files:
        name = str(path)
        try:
            doc = load_document(_decode(path.read_bytes(), name), name)
        except YamlProblem as exc:
            problems.append(exc.problem)
            continue
        if not isinstance(doc.data, list):
            problems.append(doc.problem((), "a test file is a list of cases",
                                        "- name: ...\n  given: ...\n  expect: ..."))  # fmt: skip
            continue
        for index, case in enumerate(doc.data):
            if not isinstance(case, dict):
                problems.append(doc.problem((index,), "a test case is a mapping"))
                continue
            try:
                results.append(run_case(case, index, config.rules, catalog.tax_rates,
                                        catalog.settings.default_currency))  # fmt: skip
            except CaseError as exc:
                problems.append(doc.problem(exc.path, exc.message, exc.hint, key=exc.key))
    return results, problems
