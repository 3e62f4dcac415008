"""The whole config file (contract section 1): its top-level keys, each read by its section's module."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backcheck.errors import ConfigError
from backcheck.spec.check import CHECK_KEYS, TRAIN_KEYS, CheckSpec, TrainSpec, read_check, read_train
from backcheck.spec.code import CODE_KEYS, CodeSpec, read_code
from backcheck.spec.data import DATA_KEYS, DataSpec, read_data
from backcheck.spec.network import NETWORK_KEYS, NetworkSpec, read_network
from backcheck.spec.reader import Reader, Section, read_text


@dataclass(frozen=True)
class Config:
    path: Path
    name: str
    network: NetworkSpec
    data: DataSpec
    code: CodeSpec | None
    check: CheckSpec
    train: TrainSpec
    marks: dict = field(default_factory=dict, compare=False, repr=False)  # key path -> (line, col)

    def where(self, keypath: str) -> str:
        """'model.yaml:LINE:COL' of a key path such as 'code.gradients', for later errors."""
        line, col = self.marks.get(keypath, (None, None))
        return f"{self.path}:{line}:{col}" if line else str(self.path)

    def resolve(self, relative: Path | str) -> Path:
        return (self.path.parent / relative).resolve()


def load_config(path: str | Path, code_base: Path | None = None, require_code: bool = True) -> Config:
    """Read and validate a config file. Raises ConfigError with file:line:col."""
    path = Path(path)
    if path.suffix == ".py":
        raise ConfigError(_python_given(path), str(path))
    return parse_config(read_text(path), path, code_base, require_code)


def parse_config(text: str, path: Path, code_base: Path | None = None, require_code: bool = True) -> Config:
    """The config in ``text``, read from ``path``. ``code_base``: the folder code.file is relative to,
    when it is not the YAML's own (``backcheck grade`` reads each submission's code from its folder);
    ``require_code`` False checks everything but the existence of code.file and code.root."""
    reader = Reader(path, code_base, require_code)
    root = reader.document(text)
    top = Section(reader, root, "", ("name", "network", "data", "code", "check", "train"))
    if top.given("code") and not top.has("code"):
        top.fail("code", "expected a mapping with file: and the names of the code's functions, got nothing; "
                         "remove code: to check backcheck's own reference network")
    network = read_network(Section(reader, top.require("network", "a mapping with input:, layers: and loss:"),
                                   "network", NETWORK_KEYS))
    code = read_code(Section(reader, top.located("code"), "code", CODE_KEYS), network.layers) \
        if top.has("code") else None
    if code is not None and code.place is not None and not top.has("data"):
        data = DataSpec("code")  # bound by place: the code's own data, as its program made it
    else:
        data = read_data(Section(reader, top.require("data", "a mapping with one of random:, csv: or npz:"),
                                 "data", DATA_KEYS))
    check = read_check(Section(reader, top.located("check"), "check", CHECK_KEYS)) \
        if top.has("check") else CheckSpec()
    train = read_train(Section(reader, top.located("train"), "train", TRAIN_KEYS)) \
        if top.has("train") else TrainSpec()
    name = top.get("name", str, default=path.stem, what="a name for the reports")
    return Config(path, name, network, data, code, check, train, marks=reader.marks)


def _python_given(path: Path) -> str:
    """What to say when CONFIG is the program itself: the YAML that points at it, filled in."""
    names = _function_names(path)
    loss = next((n for n in names if "loss" in n.lower()), "loss")
    grads = next((n for n in names if "grad" in n.lower() or "backward" in n.lower()), "gradients")
    return (f"this is a Python file; backcheck wants the YAML config that says what network the code should "
            f"be and points at the code. Save something like this as {path.stem}.yaml next to {path.name}, "
            f"change network: to your assignment and params: to your code's names, and run backcheck verify "
            f"{path.with_suffix('.yaml')} (configs/ in backcheck's repository has one for every calling style):"
            f"\n\nnetwork:\n  input: 4\n  layers:\n    - {{units: 5, activation: tanh}}\n"
            f"    - {{units: 3, activation: softmax}}\n  loss: cross_entropy\ndata:\n  random: {{batch: 8}}\n"
            f"code:\n  file: {path.name}\n  params: [{{W: W1, b: b1}}, {{W: W2, b: b2}}]\n  loss: {loss}\n"
            f"  gradients: {grads}\n")


def _function_names(path: Path) -> list[str]:
    """The functions the file defines at top level, read without running it ([] when it cannot be read)."""
    import ast

    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
