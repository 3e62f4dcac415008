"""The user's program as source: a Python file, or a notebook's code cells joined in order.

A notebook is run the way it would run top to bottom in Jupyter: each code cell's lines in turn,
IPython magics (``%matplotlib inline``, ``!pip install``) and help lines skipped, each with a note.
Lines are numbered in the joined source; ``where(line)`` says them the way a user finds them
("net.ipynb cell 3, line 5"), and the source is registered with ``linecache`` so that tracebacks and
the line pointer show the code, not the notebook's JSON.
"""

from __future__ import annotations

import io
import json
import linecache
from dataclasses import dataclass, field
from pathlib import Path

from backcheck.errors import ConfigError, UserCodeError

_PROGRAMS: dict = {}  # filename -> Program, for where() in messages about any frame of it

# Cell magics whose body is Python anyway: the magic line goes, the code stays.
_PYTHON_CELL_MAGICS = ("time", "timeit", "capture", "prun")


@dataclass
class Cell:
    number: int  # among the code cells, from 1
    first: int  # its first line in the joined source
    count: int  # its lines
    tags: tuple = ()

    @property
    def last(self) -> int:
        return self.first + self.count - 1


@dataclass
class Program:
    path: Path
    source: str
    cells: list | None = None  # notebooks only
    notes: list = field(default_factory=list)

    @property
    def filename(self) -> str:
        return str(self.path)

    @property
    def lines(self) -> list[str]:
        return self.source.splitlines()

    def line(self, n: int) -> str:
        lines = self.lines
        return lines[n - 1] if 1 <= n <= len(lines) else ""

    def where(self, n: int) -> str:
        """'net.py:12' or 'net.ipynb cell 3, line 5'."""
        if self.cells is None:
            return f"{self.path.name}:{n}"
        for cell in self.cells:
            if cell.first <= n <= cell.last:
                return f"{self.path.name} cell {cell.number}, line {n - cell.first + 1}"
        return f"{self.path.name}:{n}"

    def cell_of(self, n: int):
        for cell in self.cells or ():
            if cell.first <= n <= cell.last:
                return cell
        return None


def read_program(path: Path) -> Program:
    """The program at ``path`` (a .py file or a notebook), registered for messages and tracebacks."""
    if path.suffix == ".ipynb":
        program = _notebook(path)
    else:
        program = Program(path, _source_text(path))
    _PROGRAMS[program.filename] = program
    lines = [line + "\n" for line in program.lines]
    linecache.cache[program.filename] = (len(program.source), None, lines, program.filename)
    return program


def _source_text(path: Path) -> str:
    """The text of a .py file as Python reads it: its PEP 263 coding line or BOM, else UTF-8."""
    import tokenize

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserCodeError(f"cannot read the file: {exc}", path.name) from None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError) as exc:  # a coding line naming no codec Python has
        raise UserCodeError(f"cannot read the file: {getattr(exc, 'msg', None) or exc}", path.name) from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserCodeError(
            f"cannot read the file: line {line} is not valid {exc.encoding} (byte 0x{data[exc.start]:02x}); save the "
            "file as UTF-8 or name its encoding on its first line, e.g. # -*- coding: latin-1 -*-",
            f"{path.name}:{line}") from None


def program_of(filename: str) -> Program | None:
    return _PROGRAMS.get(filename)


def _notebook(path: Path) -> Program:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise UserCodeError(f"cannot read the notebook: {type(exc).__name__}: {exc}", path.name) from None
    out: list[str] = []
    found: list[Cell] = []
    notes: list[str] = []
    number = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        number += 1
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        lines = text.splitlines() or [""]
        lines = _without_magics(lines, number, notes)
        tags = tuple((cell.get("metadata") or {}).get("tags") or ())
        found.append(Cell(number, len(out) + 1, len(lines), tags))
        out.extend(lines)
    if notes:
        notes = [f"{path.name}: " + "; ".join(notes)]
    return Program(path, "\n".join(out) + "\n", found, notes)


def _without_magics(lines: list[str], number: int, notes: list) -> list[str]:
    """The cell's lines with IPython-only lines made empty (their numbers kept)."""
    first = lines[0].strip()
    if first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        if magic in _PYTHON_CELL_MAGICS:
            notes.append(f"cell {number}: the cell magic %%{magic} was skipped")
            return [""] + lines[1:]
        notes.append(f"cell {number}: a %%{magic} cell is not Python and was skipped")
        return [""] * len(lines)
    out = []
    for i, line in enumerate(lines, start=1):
        s = line.strip()
        if s.startswith(("%", "!")) or (s.endswith("?") and not s.startswith("#") and s[:-1].strip().isidentifier()):
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f"{indent}pass" if indent else "")
            notes.append(f"cell {number}, line {i}: {s.split()[0]} skipped (IPython only)")
        else:
            out.append(line)
    return out


def block_lines(program: Program, spec, key_where: str) -> list[int]:
    """The line numbers (joined source, sorted) of a LinesSpec; ConfigError when one is not there."""
    out: list[int] = []
    n_lines = len(program.lines)
    for item in spec.items:
        kind = item[0]
        if kind == "lines":
            first, last = item[1], item[2]
            if program.cells is not None:
                raise ConfigError(f"{spec.key}: {program.path.name} is a notebook: say which cell, e.g. "
                                  f"{{cell: 3, lines: {first}-{last}}} or {{tag: NAME}}", key_where)
        else:
            if program.cells is None:
                raise ConfigError(f"{spec.key}: {program.path.name} is not a notebook: give lines such as "
                                  "'12-20'", key_where)
            cell = _cell(program, kind, item[1], spec, key_where)
            first_in, last_in = item[2] or 1, item[3] or cell.count
            if last_in > cell.count:
                raise ConfigError(f"{spec.key}: cell {cell.number} has {cell.count} lines, not {last_in}", key_where)
            first, last = cell.first + first_in - 1, cell.first + last_in - 1
        if last > n_lines:
            raise ConfigError(f"{spec.key}: {program.path.name} has {n_lines} lines; lines {first}-{last} are past "
                              "its end", key_where)
        out.extend(range(first, last + 1))
    return sorted(set(out))


def _cell(program: Program, kind: str, key, spec, key_where: str) -> Cell:
    cells = program.cells
    if kind == "cell":
        if key > len(cells):
            raise ConfigError(f"{spec.key}: the notebook has {len(cells)} code cells; there is no cell {key}",
                              key_where)
        return cells[key - 1]
    marker = f"# backcheck: {key}"
    lines = program.lines
    hits = [c for c in cells if key in c.tags or lines[c.first - 1].strip() == marker]
    if len(hits) != 1:
        said = "no code cell has" if not hits else f"{len(hits)} code cells have"
        raise ConfigError(f"{spec.key}: {said} the tag {key!r} (a cell tag, or a first line '{marker}')", key_where)
    return hits[0]
