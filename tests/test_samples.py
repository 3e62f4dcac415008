"""Every sample gets its expected verdict, origin layer, wrong-parameter set and findings."""

from pathlib import Path

import pytest
import yaml

from backcheck.runner import verify

ROOT = Path(__file__).resolve().parent.parent
CASES = [(folder, name, e) for exp in sorted((ROOT / "samples").glob("*/expected.yaml"))
         for folder in [exp.parent] for name, e in yaml.safe_load(exp.read_text()).items()]


def _summary(j):
    wrong = sorted(f"{l['index']}.{p['name']}" for l in j["layers"] for p in l["params"] if p["status"] == "wrong")
    finds = sorted(f"{f['id']}@{f['layer']}" if f["layer"] else f["id"] for f in j["findings"])
    return wrong, finds, {w["id"] for w in j["warnings"]}


@pytest.mark.parametrize("folder,name,expected", CASES, ids=[f"{c[0].name}/{c[1]}" for c in CASES])
def test_sample_verdict(folder, name, expected):
    # Samples whose code misbehaves (hangs, trains at import) need the child process.
    isolate = folder.name == "broken"
    j = verify(folder / name, isolate=isolate).to_json()
    wrong, finds, warns = _summary(j)
    assert j["exit_code"] == expected["exit_code"], j["error"]
    assert j["origin_layer"] == expected.get("origin_layer")
    assert wrong == sorted(expected.get("wrong", []))
    assert finds == sorted(expected.get("findings", []))
    assert set(expected.get("warnings", [])) <= warns
    if j["exit_code"] == 1 and folder.name in ("bugs", "seeds", "shapes", "students"):
        # Every planted mistake points at its line, and at the one the sample's expected.yaml holds.
        lines = {(f"{f['id']}@{f['layer']}" if f["layer"] else f["id"]): (f.get("line") or {}).get("where")
                 for f in j["findings"] if f["severity"] == "error"}
        assert lines == expected.get("lines"), lines
    if "error_kind" in expected:
        assert j["error"]["kind"] == expected["error_kind"]
