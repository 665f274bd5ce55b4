"""Mutation testing with mutmut, one file at a time against that file's own tests (``make mutate``).

Usage: ``scripts/mutate.py [FILE ...]`` — by default every file of ``[tool.mutmut.targets]`` in
pyproject.toml, which names, per file, the tests that exercise it. ``MUTATE_JOBS`` (default 2) is how
many mutants are tested at once.

For each file a working directory ``mutants/<file>/`` is made afresh: links to the project's code and
tests, and a pyproject.toml holding the project's pytest settings and a ``[tool.mutmut]`` section that
mutates that file only and selects its tests. ``mutmut run`` then copies the code into
``mutants/<file>/mutants/``, records which of the selected tests call each function, and runs, for
each mutant, the tests that call the mutated function. Every run starts from scratch, so a changed
test always counts. The tests run with the test settings in a PostgreSQL database of their own
(``MUTATION_TESTING=1``, see config/settings/test.py), created here once before the first file and
copied once per session that runs at the same time (``tests.mutation_databases``): sessions sharing
one database would wait on each other's rows.

Prints, per file, the mutants, how many the tests killed, and the score (killed and timed-out
mutants over all mutants: a mutant no test reaches counts as not killed), then every mutant that was
not killed with its changed lines. Exits 1 when a file scores under ``MUTATE_MIN_SCORE`` (default 95)
or mutmut fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants"
MUTMUT = str(Path(sys.executable).parent / "mutmut")
# Statuses of `mutmut results` that count as caught: the tests failed, or ran out of time.
CAUGHT = {"killed", "timeout"}

# Creates (or re-creates) the mutation test database with every migration applied, so that the
# hundreds of test sessions that follow only reuse it; prints its name.
PREPARE_DATABASE = """
import os
import django
django.setup()
from django.conf import settings
from django.db import connections
from django.test.utils import setup_databases
from tests.mutation_databases import SLOTS_VARIABLE, slot_name
if settings.SERVICES["postgres"]:
    setup_databases(verbosity=0, interactive=False)
    slots = int(os.environ[SLOTS_VARIABLE])
    names = [connections[alias].settings_dict["NAME"] for alias in settings.DATABASES]
    connections.close_all()
    with connections["default"]._nodb_cursor() as cursor:
        for name in names:
            for slot in range(slots):
                copy = slot_name(name, slot)
                cursor.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
                cursor.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')
    print(f"PostgreSQL database {names[0]}, copied for {slots} sessions at once ({slot_name(names[0], 0)}, ...)")
else:
    print("in-memory SQLite (no PostgreSQL here): every test session migrates its own, which is slower")
"""


@dataclass
class Outcome:
    path: str
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    not_caught: list[tuple[str, str, list[str]]] = field(default_factory=list)  # name, status, changed lines
    error: str = ""

    @property
    def total(self) -> int:
        return self.counts.get("total", 0)

    @property
    def caught(self) -> int:
        return self.counts.get("killed", 0) + self.counts.get("timeout", 0)

    @property
    def score(self) -> float:
        return 100.0 * self.caught / self.total if self.total else 0.0


def toml_value(value: Any) -> str:
    """A TOML literal for the strings, numbers, booleans and lists of them found in these settings."""
    return json.dumps(value)  # JSON's spelling of these types is valid TOML


def toml_table(name: str, table: dict[str, Any]) -> str:
    return "\n".join([f"[{name}]", *(f"{key} = {toml_value(value)}" for key, value in table.items())]) + "\n"


def prepare_workdir(path: str, tests: list[str], project: dict[str, Any]) -> Path:
    """A fresh ``mutants/<file>/`` whose pyproject.toml mutates ``path`` only, against ``tests``."""
    mutmut_config = {key: value for key, value in project["tool"]["mutmut"].items() if key != "targets"}
    workdir = WORK / path.replace("/", ".")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    for name in [*mutmut_config["source_paths"], "tests"]:
        (workdir / name).symlink_to(ROOT / name)
    mutmut_config.update(only_mutate=[path], pytest_add_cli_args_test_selection=tests)
    (workdir / "pyproject.toml").write_text(
        "# Written by scripts/mutate.py for one run; the settings live in the project's pyproject.toml.\n"
        + toml_table("tool.pytest.ini_options", project["tool"]["pytest"]["ini_options"])
        + "\n"
        + toml_table("tool.mutmut", mutmut_config)
    )
    return workdir


def run_mutmut(workdir: Path, args: list[str], env: dict[str, str], log: Path | None = None) -> str:
    if log is None:
        # The venv's own mutmut with arguments built here: no outside input.
        done = subprocess.run([MUTMUT, *args], cwd=workdir, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"mutmut {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout
    with log.open("w") as out:
        code = subprocess.run(  # noqa: S603 (as above)
            [MUTMUT, *args], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if code.returncode != 0:
        tail = "".join(log.read_text(errors="replace").replace("\r", "\n").splitlines(keepends=True)[-40:])
        raise RuntimeError(f"mutmut {' '.join(args)} failed (exit {code.returncode}); end of {log}:\n{tail}")
    return ""


def changed_lines(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def mutate_file(path: str, tests: list[str], project: dict[str, Any], env: dict[str, str], jobs: int) -> Outcome:
    started = time.monotonic()
    workdir = prepare_workdir(path, tests, project)
    outcome = Outcome(path=path, seconds=0.0)
    try:
        run_mutmut(workdir, ["run", "--max-children", str(jobs)], env, log=workdir / "mutmut-run.log")
        run_mutmut(workdir, ["export-cicd-stats"], env)
        outcome.counts = json.loads((workdir / "mutants" / "mutmut-cicd-stats.json").read_text())
        for line in run_mutmut(workdir, ["results"], env).splitlines():
            name, sep, status = line.strip().rpartition(": ")
            if sep and status not in CAUGHT:
                diff = run_mutmut(workdir, ["show", name], env)
                outcome.not_caught.append((name, status, changed_lines(diff)))
    except RuntimeError as exc:
        outcome.error = str(exc)
    outcome.seconds = time.monotonic() - started
    return outcome


def report(outcomes: list[Outcome], min_score: float) -> bool:
    """Prints the scores and the mutants not caught; True when every file reaches ``min_score``."""
    print("\nMutation score per file (killed or timed out / all mutants):")
    print(
        f"  {'file':<28} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8}"
        f" {'score':>7} {'time':>6}"
    )
    for o in outcomes:
        if o.error:
            print(f"  {o.path:<28} mutmut failed after {o.seconds:.0f}s")
            continue
        c = o.counts
        print(
            f"  {o.path:<28} {o.total:>7} {c.get('killed', 0):>6} {c.get('timeout', 0):>7} {c.get('survived', 0):>8}"
            f" {c.get('no_tests', 0):>8} {o.score:>6.1f}% {o.seconds:>5.0f}s"
        )
    for o in outcomes:
        if o.error:
            print(f"\n{o.path}: {o.error}")
        elif o.not_caught:
            print(f"\nNot killed in {o.path} ({len(o.not_caught)}):")
            for name, status, lines in o.not_caught:
                print(f"  {name} [{status}]")
                for line in lines:
                    print(f"      {line.strip()[:150]}")
    below = [o.path for o in outcomes if o.error or o.score < min_score]
    print(
        f"\n{len(outcomes) - len(below)} of {len(outcomes)} files at or above {min_score:g}%"
        + (f"; below: {', '.join(below)}" if below else "")
    )
    return not below


def main(argv: list[str]) -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    targets: dict[str, list[str]] = project["tool"]["mutmut"]["targets"]
    paths = argv or list(targets)
    unknown = [p for p in paths if p not in targets]
    missing = [p for p in paths if not (ROOT / p).is_file()]
    if unknown or missing:
        print(f"Not in [tool.mutmut.targets]: {unknown}; no such file: {missing}", file=sys.stderr)
        return 2
    jobs = int(os.environ.get("MUTATE_JOBS", "2"))
    min_score = float(os.environ.get("MUTATE_MIN_SCORE", "95"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "MUTATION_TESTING": "1",
        # A database per session running at once: mutmut's own process and its `jobs` children.
        "MUTATION_DATABASE_SLOTS": str(jobs + 1),  # tests.mutation_databases
    }

    prepared = subprocess.run(  # noqa: S603 (this interpreter, a fixed script)
        [sys.executable, "-c", PREPARE_DATABASE], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if prepared.returncode != 0:
        print(f"Could not prepare the test database:\n{prepared.stdout}{prepared.stderr}", file=sys.stderr)
        return 1
    print(f"Test database: {prepared.stdout.strip()}")
    if not prepared.stdout.startswith("PostgreSQL"):
        # SQLite: each session has its own in-memory database already; there are no copies to use.
        del env["MUTATION_DATABASE_SLOTS"]

    outcomes = []
    for path in paths:
        print(f"Mutating {path} against {' '.join(targets[path])} ({jobs} at a time)...", flush=True)
        outcomes.append(mutate_file(path, targets[path], project, env, jobs))
    return 0 if report(outcomes, min_score) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
