"""docs/binding.md shows the samples' YAML verbatim: a worked example cannot drift from a file that runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_worked_examples_match_their_samples():
    text = (ROOT / "docs" / "binding.md").read_text()
    blocks = re.findall(r"<!-- sample: (\S+) -->\n```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 9
    for path, block in blocks:
        lines = (ROOT / path).read_text().splitlines()
        body = "\n".join(lines[1:] if lines[0].startswith("#") else lines).strip()
        assert block.strip() == body, path
