"""Paths into the code's objects (``layers[0].weights``) and EXPRs (``$grads['dW1']``)."""

from __future__ import annotations

import functools
import re

WILDCARD = "*"  # [*] in a path: every element of a list

_TOKEN = re.compile(r"""\s*(?:\.?([A-Za-z_]\w*)|\[\s*(-?\d+)\s*\]|\[\s*(\*)\s*\]|\[\s*(['"])(.*?)\4\s*\])""")


@functools.lru_cache(maxsize=4096)  # paths are read on every call into the code: parse each once
def parse_path(text: str) -> tuple:
    """'layers[0].weights' -> ('layers', 0, 'weights'); "params['W1']" -> ('params', 'W1');
    'layers[*].lr' -> ('layers', '*' , 'lr') (every element)."""
    pos, parts = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot read '{text}' at character {pos + 1}: expected a name, [index] or ['key']")
        name, index, star, _, key = m.groups()
        parts.append(name if name is not None else int(index) if index is not None else
                     WILDCARD if star else key)
        pos = m.end()
    if not parts:
        raise ValueError("empty path")
    return tuple(parts)


@functools.lru_cache(maxsize=4096)
def parse_expr(text: str) -> tuple[str, tuple]:
    """'$grads['dW1']' -> ('grads', ['dW1']); '$module.LR' -> ('module', ['LR'])."""
    m = re.match(r"\$([A-Za-z_]\w*)", text)
    if not m:
        raise ValueError(f"cannot read '{text}': expected $name, such as $X or $grads['dW1']")
    rest = text[m.end():]
    return m.group(1), (parse_path(rest) if rest.strip() else ())


def mentions(expr, name: str) -> bool:
    """Whether an EXPR (a string, list or mapping of them) uses $name, e.g. $lr."""
    if isinstance(expr, str):
        return expr.startswith("$" + name) and not expr.startswith("$$") and \
            parse_expr(expr)[0] == name
    if isinstance(expr, (list, tuple)):
        return any(mentions(e, name) for e in expr)
    if isinstance(expr, dict):
        return any(mentions(e, name) for e in expr.values())
    return False
