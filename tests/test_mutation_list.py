"""The declarative mutation list (tests/mutations.py) stays applicable: each
entry's old text occurs exactly once in its file, and each test it names
exists. The mutations themselves run in tests/mutation_runner.py (.ci/run)."""

from __future__ import annotations

import pytest

from mutation_runner import ROOT, check_entry
from mutations import MUTATIONS


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_every_mutation_applies_exactly_once(mutation):
    assert check_entry(mutation) is None, f"{mutation.name}: {check_entry(mutation)}"


def test_every_write_script_has_a_mutation():
    scripts = {path.name for path in (ROOT / "lua").glob("*.lua")}
    read_only = {"lease_read.lua", "load_inputs.lua", "dump_runtime.lua", "input_by_key.lua"}
    mutated = {m.file.removeprefix("lua/") for m in MUTATIONS if m.file.startswith("lua/")}
    assert scripts - read_only - mutated == set()


def test_a_stale_entry_is_reported_clearly(tmp_path):
    (tmp_path / "lua").mkdir()
    (tmp_path / "lua" / "x.lua").write_text("a\na\n")
    stale = MUTATIONS[0].__class__("stale", "lua/x.lua", "a", "b", ())
    assert "occurs 2 times" in check_entry(stale, tmp_path)
