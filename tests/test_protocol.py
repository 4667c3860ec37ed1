"""Protocol loading: defaults filled in, and every malformed protocol is a one-line exit-2 error.

``faceaudit.protocol`` is the schema only; ``api.validate`` (``faceaudit validate``) also checks
that the models a protocol names resolve."""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from faceaudit.api import validate
from faceaudit.core.errors import BadInput
from faceaudit.protocol import load_protocol, parse_protocol

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_protocols_load_and_fill_defaults():
    default = load_protocol(ROOT / "protocols" / "default.yaml")
    assert default.n_seeds >= 150
    assert len(default.protected.levels) == 3
    assert len(default.edits) >= 3 and all(len(e.levels) >= 4 for e in default.edits)
    assert set(default.models) == {"dlib", "sface", "faceres", "mobileface", "mobilefacenet"}
    resolved = yaml.safe_load(default.to_yaml())
    assert resolved["analysis"]["adjust"] == "holm"  # a default that was not in the file
    quick = load_protocol(ROOT / "protocols" / "quick.yaml")
    assert [e.attribute for e in quick.edits] == [e.attribute for e in default.edits]


def write(tmp_path, data) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def base():
    return yaml.safe_load((ROOT / "protocols" / "quick.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d.update(n_seeds="many"), "n_seeds"),
        (lambda d: d.update(n_seed=10), "n_seed: unknown key"),
        (lambda d: d["edits"][0].update(levels=[0, 1]), "edits.0.levels"),
        (lambda d: d["edits"][1].update(attribute="hair"), "edits.1.attribute"),
        (lambda d: d.update(models=["dlib", "no_such_model"]), "models.1"),
        (lambda d: d.update(models=["nosuchpkg.mod:factory"]), "models.0"),
        (lambda d: d["protected"].update(reference="purple"), "reference 'purple'"),
        (lambda d: d["analysis"].update(target_fmr=[2.0]), "analysis.target_fmr"),
        (lambda d: d.pop("edits"), "edits: required key is missing"),
    ],
)
def test_malformed_protocol_names_the_key(tmp_path, mutate, expected):
    data = base()
    mutate(data)
    with pytest.raises(BadInput) as info:
        validate(write(tmp_path, data))
    msg = str(info.value)
    assert expected in msg and "\n" not in msg and str(tmp_path) in msg


def test_protocol_is_the_schema_only(tmp_path):
    # a finished run opens where its models are not installed: the schema does not resolve them
    data = base()
    data["models"] = ["dlib", "no_such_model"]
    assert load_protocol(write(tmp_path, data)).models == ["dlib", "no_such_model"]
    # no switch turns model checks on inside the schema (they are the caller's: check_model_specs)
    assert "check_models" not in inspect.signature(parse_protocol).parameters
    assert "check_models" not in inspect.signature(load_protocol).parameters
    # and it does not import the model registry (which sits above it)
    code = "import sys, faceaudit.protocol; print(sorted(m for m in sys.modules if m.startswith('faceaudit.models')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(BadInput, match="protocol file not found"):
        load_protocol(tmp_path / "nope.yaml")
    with pytest.raises(BadInput, match="not valid YAML at line 2"):
        load_protocol(write(tmp_path, "name: x\n  bad: [\n"))


def test_cli_exit_code_2_with_one_line(tmp_path):
    data = base()
    data["n_seeds"] = "many"
    proc = subprocess.run([sys.executable, "-m", "faceaudit.cli", "validate", str(write(tmp_path, data))],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "n_seeds" in lines[0], proc.stderr
    proc = subprocess.run([sys.executable, "-m", "faceaudit.cli", "audit", str(tmp_path / "missing.yaml"), "--out",
                           str(tmp_path / "run")], capture_output=True, text=True)
    assert proc.returncode == 2 and "protocol file not found" in proc.stderr
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_crossed_protected_attributes():
    p = load_protocol(ROOT / "protocols" / "skin-gender.yaml")
    assert p.protected_attribute == "skin_tone+gender"
    assert p.group_names == [f"skin={s}|gender={g}" for s in ("light", "intermediate", "dark") for g in ("female", "male")]
    assert p.reference_group == "skin=light|gender=male"
    assert [a for a, *_ in p.group_attributes] == ["skin_tone", "gender"]
    assert "age" in [e.attribute for e in p.edits]
    # the resolved protocol round-trips
    assert load_protocol(write_text_tmp(p.to_yaml())).group_names == p.group_names


def write_text_tmp(text: str) -> Path:
    import tempfile

    f = Path(tempfile.mkdtemp()) / "p.yaml"
    f.write_text(text)
    return f


@pytest.mark.parametrize("protected, expected", [
    ([{"attribute": "skin_tone"}, {"attribute": "skin_tone"}], "protected: attribute listed twice"),
    ([{"attribute": "gender"}, {"attribute": "skin_tone"}], "protected: the dcgan generator places every seed by skin tone first"),
    ([{"attribute": "skin_tone"}, {"attribute": "race", "reference": "a", "levels": ["a", "b"]}],
     "protected: 'race' is a prompt slot"),
    ([{"attribute": "skin_tone"}, {"attribute": "gendr"}], "protected.1.attribute: unknown protected attribute 'gendr'"),
    ([{"attribute": "skin_tone"}, {"attribute": "gender", "refrence": "male"}], "protected.1.refrence: unknown key"),
    ([{"attribute": "skin_tone"}, {"attribute": "gender", "reference": "man"}], "reference 'man' is not one of the levels"),
    ([{"attribute": "skin_tone"}, {"attribute": "gender", "levels": [
        {"name": "female", "p_male_min": 0, "p_male_max": 0.5, "target": 0.7},
        {"name": "male", "p_male_min": 0.5, "p_male_max": 1, "target": 0.8}]}], "target must lie in [p_male_min, p_male_max]"),
])
def test_crossed_protected_errors_are_one_line(tmp_path, protected, expected):
    data = base()
    data["protected"] = protected
    with pytest.raises(BadInput) as err:
        load_protocol(write(tmp_path, data))
    msg = str(err.value)
    assert expected in msg and "\n" not in msg, msg
