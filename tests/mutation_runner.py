"""Apply each entry of tests/mutations.py to a temporary copy of the
repository and require its tests to fail there.

    .venv/bin/python tests/mutation_runner.py [--jobs N] [--only TEXT]

First the tests named by the entries run on an unmutated copy: they must
pass, or a "caught" mutation would mean nothing. Then each mutation gets its
own copy; every node id in its ``must_fail`` must fail. Exit 1 if any
mutation survives, an ``old`` text does not occur exactly once, or the
baseline fails; each with a message saying which and why.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from mutations import MUTATIONS, Mutation  # noqa: E402

SKIP = shutil.ignore_patterns(".venv", ".git", "mutants", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist")


def check_entry(mutation: Mutation, root: Path = ROOT) -> str | None:
    """Why the entry cannot be applied, or None."""
    path = root / mutation.file
    if not path.is_file():
        return f"{mutation.file} does not exist"
    count = path.read_text(encoding="utf-8").count(mutation.old)
    if count != 1:
        return f"its old text occurs {count} times in {mutation.file}, not exactly once: update the entry ({mutation.old!r})"
    for node in mutation.must_fail:
        test_file, _, rest = node.partition("::")
        function = rest.split("[")[0]
        if not (root / test_file).is_file() or f"def {function}(" not in (root / test_file).read_text(encoding="utf-8"):
            return f"no test {node}"
    return None


def _copy(into: Path) -> Path:
    copy = into / "repo"
    shutil.copytree(ROOT, copy, ignore=SKIP)
    return copy


def _pytest(copy: Path, nodes: list[str]) -> tuple[int, set[str], str]:
    """Run the nodes in the copy: exit code, failed node ids, output tail."""
    env = {**os.environ, "PYTHONPATH": str(copy), "REDIS_STORE_REQUIRE_SERVERS": "1"}
    env.pop("REDIS_STORE_BACKENDS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "--tb=no", "-o", "addopts=", *nodes],
        cwd=copy, env=env, capture_output=True, text=True, timeout=900,
    )
    failed = set(re.findall(r"^FAILED (\S+)", proc.stdout, re.MULTILINE))
    return proc.returncode, failed, proc.stdout[-1500:] + proc.stderr[-1500:]


def _probe(copy: Path) -> None:
    """The copy's own redis_store is the one imported there."""
    env = {**os.environ, "PYTHONPATH": str(copy)}
    out = subprocess.run([sys.executable, "-c", "import redis_store; print(redis_store.__file__)"],
                         cwd=copy, env=env, capture_output=True, text=True, check=True).stdout.strip()
    if not out.startswith(str(copy)):
        raise SystemExit(f"the copy imports redis_store from {out}, not from {copy}: mutations would not apply")


def run_one(mutation: Mutation) -> tuple[Mutation, str | None, float]:
    """(mutation, why it survived or could not run, seconds)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="redis-store-mutation-") as tmp:
        copy = _copy(Path(tmp))
        path = copy / mutation.file
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(mutation.old, mutation.new, 1), encoding="utf-8")
        code, failed, tail = _pytest(copy, list(mutation.must_fail))
    missed = [node for node in mutation.must_fail if node not in failed]
    if code not in (0, 1):
        return mutation, f"pytest exited {code} (not a test failure):\n{tail}", time.monotonic() - started
    if missed:
        return mutation, f"survived: these passed: {missed}", time.monotonic() - started
    return mutation, None, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", default="", help="run the entries whose name contains this text")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.only in m.name]
    broken = [(m, why) for m in chosen if (why := check_entry(m))]
    for mutation, why in broken:
        print(f"BROKEN ENTRY {mutation.name!r}: {why}")
    if broken:
        return 1
    started = time.monotonic()
    nodes = sorted({node for m in chosen for node in m.must_fail})
    with tempfile.TemporaryDirectory(prefix="redis-store-mutation-") as tmp:
        copy = _copy(Path(tmp))
        _probe(copy)
        code, failed, tail = _pytest(copy, nodes)
    if code != 0:
        print(f"BASELINE FAILED: the unmutated tests must pass first (exit {code}, failed {sorted(failed)}):\n{tail}")
        return 1
    print(f"baseline: {len(nodes)} tests pass unmutated ({time.monotonic() - started:.0f} s)")
    survivors = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for mutation, why, seconds in pool.map(run_one, chosen):
            survivors += why is not None
            print(f"{'caught  ' if why is None else 'MISSED  '} {seconds:5.1f} s  {mutation.name}" + (f"\n    {why}" if why else ""))
    print(f"{len(chosen) - survivors} of {len(chosen)} mutations caught in {time.monotonic() - started:.0f} s")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
