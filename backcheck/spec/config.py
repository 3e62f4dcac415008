"""The whole config file (contract section 1): its top-level keys, each read by its section's module."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backcheck.errors import ConfigError
from backcheck.spec.check import CHECK_KEYS, TRAIN_KEYS, CheckSpec, TrainSpec, read_check, read_train
from backcheck.spec.code import CODE_KEYS, CodeSpec, read_code
from backcheck.spec.data import DATA_KEYS, DataSpec, read_data
from backcheck.spec.network import NETWORK_KEYS, NetworkSpec, read_network
from backcheck.spec.reader import Reader, Section


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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", str(path)) from None
    return parse_config(text, path, code_base, require_code)


def parse_config(text: str, path: Path, code_base: Path | None = None, require_code: bool = True) -> Config:
    """The config in ``text``, read from ``path``. ``code_base``: the folder code.file is relative to,
    when it is not the YAML's own (``backcheck grade`` reads each submission's code from its folder);
    ``require_code`` False checks everything but the existence of code.file and code.root."""
    reader = Reader(path, code_base, require_code)
    root = reader.document(text)
    top = Section(reader, root, "", ("name", "network", "data", "code", "check", "train"))
    network = read_network(Section(reader, top.require("network"), "network", NETWORK_KEYS))
    data = read_data(Section(reader, top.require("data"), "data", DATA_KEYS))
    code = read_code(Section(reader, top.located("code"), "code", CODE_KEYS), network.layers) \
        if top.has("code") else None
    check = read_check(Section(reader, top.located("check"), "check", CHECK_KEYS)) \
        if top.has("check") else CheckSpec()
    train = read_train(Section(reader, top.located("train"), "train", TRAIN_KEYS)) \
        if top.has("train") else TrainSpec()
    name = top.get("name", str, default=path.stem)
    return Config(path, name, network, data, code, check, train, marks=reader.marks)
