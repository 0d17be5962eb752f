"""Every module stays short enough to read in one sitting (STYLE.md point 2: one concept, one file).

Lines are counted the way tinygrad's CI counts them: lines that carry code, so blank lines,
comments and docstrings are free (explanations are never the thing to cut).
"""
import ast
import io
import pathlib
import tokenize

import pytest

import npmobilenet

BUDGET = 300
PACKAGE = pathlib.Path(npmobilenet.__file__).parent


def code_lines(source):
    """Numbers of the lines holding a token other than a comment, a newline or a docstring."""
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                docstring_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER, tokenize.ENCODING}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines - docstring_lines


def test_counter_ignores_docstrings_comments_and_blanks():
    src = '"""doc\nstring"""\n\n# comment\nx = 1\n\ndef f():\n    """doc"""\n    return x  # trailing\n'
    assert sorted(code_lines(src)) == [5, 7, 9]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_within_line_budget(path):
    n = len(code_lines(path.read_text()))
    assert n <= BUDGET, f"{path.relative_to(PACKAGE)} has {n} code lines; the budget is {BUDGET}: split the concept"
