"""The lessons are committed as sources: valid notebooks, no outputs, and each with the anatomy the
README promises (goal, numbered equations, the library's code, asserting checks, numbered exercises).
Executing them is CI's ``pytest --nbmake lessons/`` step; this file checks what can be checked statically."""
import json
import pathlib
import re

import pytest

LESSONS = pathlib.Path(__file__).resolve().parent.parent / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("*.ipynb"))
NUMBERED = [p for p in NOTEBOOKS if re.match(r"\d\d_", p.name)]
WORKSHEETS = [p for p in NOTEBOOKS if p.name.startswith("worksheet_")]

pytestmark = pytest.mark.skipif(not LESSONS.is_dir(), reason="the lessons are not part of an installed package")


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_all_ten_lessons_and_the_worksheets_exist():
    assert [p.name[:2] for p in NUMBERED] == [f"{i:02d}" for i in range(1, 11)]
    assert len(WORKSHEETS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_the_python3_kernel(path):
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            assert c["outputs"] == [] and c["execution_count"] is None, f"{path.name}: strip the outputs"


@pytest.mark.parametrize("path", NUMBERED, ids=lambda p: p.name)
def test_lesson_anatomy(path):
    cs = cells(path)
    md = "\n".join(source(c) for c in cs if c["cell_type"] == "markdown")
    code = "\n".join(source(c) for c in cs if c["cell_type"] == "code")
    assert source(cs[0]).startswith(f"# Lesson {int(path.name[:2])} ") and "**Goal.**" in source(cs[0])
    assert len(re.findall(r"\\tag\{\d+\}", md)) >= 2, "numbered equations"
    assert "inspect.getsource" in code or "show(" in code, "the library's code is shown"
    assert re.search(r"^\s*assert ", code, re.M) or ".assert_passed()" in code, "checks assert"
    assert "import npmobilenet" in code or "from npmobilenet" in code
    exercises = md[md.index("## Exercises"):]
    assert len(re.findall(r"^\d+\. \*\((easy|medium|open)\)\*", exercises, re.M)) >= 4
    assert "(open)" in exercises and "(easy)" in exercises


@pytest.mark.parametrize("path", WORKSHEETS, ids=lambda p: p.name)
def test_worksheet_exercises_start_unwritten_and_solutions_are_proven(path):
    code = [source(c) for c in cells(path) if c["cell_type"] == "code"]
    exercises = [c for c in code if re.match(r"def \w+\(L\):", c)]
    assert exercises and all("= None" in c for c in exercises)
    checks = [c for c in code if c.startswith("ws.check(")]
    assert len(checks) == len(exercises)
    assert any("ws.solutions" in c and "assert" in c for c in code)


def test_readme_lists_every_notebook():
    readme = (LESSONS / "README.md").read_text()
    for p in NOTEBOOKS:
        assert p.name in readme, p.name
    assert "jupyter" in readme and "metapackage" in readme
