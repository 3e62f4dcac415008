"""Import direction: yaml only in the config reader, rich only in render, click only in cli."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "backcheck"
ONLY = {"yaml": "spec/reader.py", "rich": "render.py", "click": "cli.py"}  # paths inside backcheck/


def test_heavy_imports_stay_in_their_module():
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                top = name.split(".")[0]
                if top in ONLY:
                    where = path.relative_to(PKG).as_posix()
                    assert where == ONLY[top], f"{where} imports {top}"
