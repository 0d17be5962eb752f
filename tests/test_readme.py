"""The README's promises: its set-up commands are what CI runs, and its Python examples run."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
pytestmark = pytest.mark.skipif(not README.exists(), reason="README.md is not beside the tests")


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def section(title):
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_first_two_commands_are_install_and_run_then_install_and_test():
    first, second = [b.strip() for b in blocks("bash")[:2]]
    assert first == "pip install . && npmobilenet train"
    assert second == 'pip install ".[test]" && pytest'
    ci = (ROOT / ".ci" / "run").read_text()
    assert second in ci.splitlines(), ".ci/run must call the README's test command verbatim"


@pytest.mark.parametrize("title", ["The layer library", "The models"])
def test_python_examples_run(title, capsys):
    code = re.findall(r"```python\n(.*?)```", section(title), flags=re.S)
    assert code, f"no Python example under '## {title}'"
    exec(compile(code[0], f"README.md ({title})", "exec"), {})
    out = capsys.readouterr().out
    if title == "The layer library":
        assert "all passed" in out
    else:
        # timm 1.0.31 mobilenetv3_large_100: 5,483,032 params, 216,589,760 MAdds at 224
        # (sum(p.numel()) and forward-hook MAdds; the same figures test_count.py cites)
        assert re.search(r"total params\s+5,483,032", out) and re.search(r"total MAdds\s+216,589,760", out)
