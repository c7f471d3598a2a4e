"""The tests mirror the package: each test file sits in the folder of the part of src/aprqa it tests.

Top level holds only the cross-cutting checks (public API, README, architecture guards); a new test
file dropped at the top, or a folder with no counterpart, fails here.
"""

from __future__ import annotations

from _paths import ROOT, TESTS

TOP_LEVEL = {"test_public_api.py", "test_readme_examples.py", "test_architecture_imports.py",
             "test_one_home_facts.py", "test_source_size.py", "test_tests_layout.py", "test_self_contained.py"}
# test folders -> the source they cover (a package under src/aprqa, a top-level module, or benches/)
COUNTERPART = {"arch": "src/aprqa/arch", "comparison": "src/aprqa/comparison", "core": "src/aprqa/core.py",
               "formats": "src/aprqa/formats", "inference": "src/aprqa/inference", "playbook": "src/aprqa/playbook",
               "report": "src/aprqa/report", "engines": "src/aprqa/engines", "fsio": "src/aprqa/fsio",
               "cli": "src/aprqa/cli", "conversion": "src/aprqa/conversion.py", "quant": "src/aprqa/quant", "benches": "benches",
               "fuzz": "src/aprqa/formats"}
SUPPORT = {"helpers", "fixtures", "__pycache__"}


def test_top_level_holds_only_cross_cutting_tests():
    top = {p.name for p in TESTS.glob("test_*.py")}
    assert top == TOP_LEVEL, f"move these into the folder of what they test: {sorted(top - TOP_LEVEL)}"


def test_every_test_folder_mirrors_a_part_of_the_package():
    folders = {p.name for p in TESTS.iterdir() if p.is_dir()} - SUPPORT
    assert folders == set(COUNTERPART), sorted(folders ^ set(COUNTERPART))
    for name, src in COUNTERPART.items():
        assert (ROOT / src).exists(), f"tests/{name} covers {src}, which is gone"
        assert list((TESTS / name).glob("test_*.py")), f"tests/{name} holds no test"
