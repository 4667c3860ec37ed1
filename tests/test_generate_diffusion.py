"""The diffusion backend on a real (tiny, randomly initialised) Stable-Diffusion-style pipeline.

The pipeline is built here from configs in code (tests/_tiny_diffusion.py), saved in the diffusers
layout and reloaded offline from that folder, exactly as a user's model folder would be. Its images
are noise, not faces: what is tested is the machinery (determinism, the shared initial latent,
shared self-attention, weight resolution, the audit's tables and its failure-to-enrol accounting).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import json

import yaml

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from _tiny_diffusion import break_tokenizer, build_tiny_pipeline, tiny_vocab  # noqa: E402

from faceaudit.core.errors import BadInput  # noqa: E402
from faceaudit.generate.base import Edit  # noqa: E402

SEEDS = [0, 1, 2, 3]
#: short prompts: the tiny tokenizer spells most words letter by letter, and CLIP truncates at 77 tokens
SETTINGS = dict(device="cpu", resolution=32, num_inference_steps=2, guidance_scale=5.0, prompt="{skin} face, {edit}",
                neutral_phrase="frontal, neutral",
                edit_phrases={"yaw": {"-1": "turned left", "+1": "turned right"}, "smile": {"+1": "smile"}})


@pytest.fixture(scope="module")
def offline_env():
    """No network for the hub: every load in this module must come from local folders."""
    old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, offline_env):
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "tiny-sd")


@pytest.fixture(scope="module")
def generators(tiny_dir):
    from faceaudit.generate.diffusion.generator import DiffusionGenerator

    return {s: DiffusionGenerator(model_id=str(tiny_dir), identity_sharing=s, **SETTINGS) for s in (0.0, 0.8)}


def test_tiny_pipeline_reloads_offline_with_its_in_memory_tokenizer(generators):
    gen = generators[0.0]
    tok = gen.pipe.tokenizer
    assert len(tok) == len(tiny_vocab())
    ids = tok("a face").input_ids
    assert ids[0] == 0 and ids[-1] == 1 and tok.convert_ids_to_tokens(ids[1:-1]) == ["a</w>", "face</w>"]
    assert type(gen.pipe).__name__ == "StableDiffusionPipeline" and gen.dtype.is_floating_point
    assert gen.batch_size == 4  # CPU: fixed batch


def test_same_seed_and_prompt_give_identical_images(generators, tiny_dir):
    from faceaudit.generate.diffusion.generator import DiffusionGenerator

    gen = generators[0.0]
    a = gen.render(SEEDS, "skin=dark").images
    b = gen.render(SEEDS, "skin=dark").images
    assert a.shape == (4, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    # a fresh load of the folder renders the same bytes
    again = DiffusionGenerator(model_id=str(tiny_dir), identity_sharing=0.0, **SETTINGS).render(SEEDS[:2], "skin=dark").images
    assert np.array_equal(a[:2], again)
    # different seeds, different images; same seed, other prompt: a different (but related) image
    assert np.abs(a[0].astype(float) - a[1]).mean() > 20
    light = gen.render(SEEDS, "skin=light").images
    assert 0 < np.abs(light.astype(float) - a).mean() < np.abs(a[0].astype(float) - a[1]).mean()


def test_every_image_of_a_seed_starts_from_the_same_latent(generators):
    gen = generators[0.8]
    first_inputs: list = []

    def grab(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        if len(first_inputs) == 0 or first_inputs[-1] is None:
            first_inputs[-1:] = [sample.detach().clone()]

    handle = gen.pipe.unet.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        seen = {}
        for group, edit in [("skin=dark", None), ("skin=dark", Edit("yaw", 1.0)), ("skin=light", Edit("smile", 1.0))]:
            first_inputs.append(None)
            gen.render(SEEDS, group, edit)
            seen[(group, edit)] = first_inputs[-1]
    finally:
        handle.remove()
    inputs = list(seen.values())
    # with guidance the UNet sees [uncond x 4, cond x 4]; both halves are the seed's initial latent
    for x in inputs:
        assert x.shape[0] == 8 and np.array_equal(x[:4].numpy(), x[4:].numpy())
        assert np.array_equal(x[:4].numpy(), inputs[0][:4].numpy())
    assert not np.array_equal(inputs[0][0].numpy(), inputs[0][1].numpy())
    # the latent is a function of (protocol seed, face seed), not of the batch it is drawn in
    assert np.array_equal(gen.initial_latents([3])[0].numpy(), gen.initial_latents([1, 3])[1].numpy())


def test_identity_sharing_keeps_the_prototype_and_pulls_edits_towards_it(generators):
    plain, shared = generators[0.0], generators[0.8]
    proto_plain = plain.render(SEEDS, "skin=dark").images
    proto_shared = shared.render(SEEDS, "skin=dark").images
    assert np.array_equal(proto_plain, proto_shared)  # bit-identical: recorded, not altered
    # the memory estimate behind the GPU batch size is exactly what a prototype batch records
    assert shared.sharing.nbytes() == len(SEEDS) * shared.shared_bytes_per_image() > 0
    ratios = []
    for edit in (Edit("yaw", -1.0), Edit("yaw", 1.0), Edit("smile", 1.0)):
        far = np.abs(plain.render(SEEDS, "skin=dark", edit).images.astype(float) - proto_plain).mean(axis=(1, 2, 3))
        near = np.abs(shared.render(SEEDS, "skin=dark", edit).images.astype(float) - proto_plain).mean(axis=(1, 2, 3))
        assert (far > 1.0).all()  # the edit changes the image at all
        ratios.append(near / far)
    ratios = np.concatenate(ratios)
    # every seed and edit is closer to its prototype with sharing; by 10% or more on average
    assert (ratios < 1.0).all(), ratios
    assert ratios.mean() < 0.9, ratios


def test_empty_tokenizer_is_reported(tiny_dir, tmp_path):
    from faceaudit.generate.diffusion.generator import DiffusionGenerator

    broken = Path(shutil.copytree(tiny_dir, tmp_path / "broken"))
    break_tokenizer(broken)
    with pytest.raises(BadInput) as err:
        DiffusionGenerator(model_id=str(broken), identity_sharing=0.0, **SETTINGS)
    msg = str(err.value)
    assert "empty vocabulary" in msg and "2 tokens" in msg and "\n" not in msg


def test_weights_resolve_from_faceaudit_weights(tiny_dir, tmp_path, monkeypatch):
    from faceaudit.core.errors import ModelUnavailable
    from faceaudit.generate.diffusion.weights import resolve_model_dir
    from faceaudit.generate.registry import list_generators

    root = tmp_path / "weights"
    shutil.copytree(tiny_dir, root / "acme" / "tiny-sd")
    monkeypatch.setenv("FACEAUDIT_WEIGHTS", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    assert resolve_model_dir("acme/tiny-sd") == root / "acme" / "tiny-sd"
    with pytest.raises(ModelUnavailable) as err:
        resolve_model_dir("acme/not-here")
    assert "acme/not-here" in str(err.value) and "FACEAUDIT_WEIGHTS" in str(err.value)
    table = list_generators().set_index("name")
    assert table.loc["dcgan", "ready"] and table.loc["diffusion", "ready"]
    assert "acme/tiny-sd" in table.loc["diffusion", "detail"]
    proc = subprocess.run([sys.executable, "-m", "faceaudit.cli", "generators"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    rows = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in proc.stdout.splitlines() if ln.count("│") >= 4
            and ln.split("│")[1].strip()}
    assert rows == {"dcgan": "yes", "diffusion": "yes"}


def _protocol(model: str, **extra) -> dict:
    return {
        "name": "tiny-diffusion", "seed": 0, "n_seeds": 3,
        "generator": {"name": "diffusion", "model": model, "resolution": 32, "steps": 2, "guidance": 5.0,
                      "identity_sharing": 0.8, "prompt": SETTINGS["prompt"], "neutral_phrase": SETTINGS["neutral_phrase"],
                      "edit_phrases": SETTINGS["edit_phrases"]},
        "protected": {"attribute": "skin_tone", "reference": "light", "levels": [
            {"name": "light", "ita_min": 10, "ita_max": 90, "target": 28},
            {"name": "dark", "ita_min": -90, "ita_max": 10, "target": -55}]},
        "edits": [{"attribute": "yaw", "levels": [-1, 1]}],
        # sface: the real recognizer, which finds no face in noise (every image fails to enrol);
        # the colour-histogram plugin enrols everything, so the statistics have comparisons to run on
        "models": ["sface", "plugins.color_model:factory"],
        "analysis": {"target_fmr": [0.1], "n_boot": 200},
        **extra,
    }


def test_audit_with_the_diffusion_generator_writes_every_table(tiny_dir, tmp_path, session_cache):
    from faceaudit import pipeline
    from faceaudit.protocol import parse_protocol

    out = tmp_path / "run"
    ctx = pipeline.audit(parse_protocol(_protocol(str(tiny_dir))), out, progress=False)
    root = ctx.run.root
    for rel in ["protocol.yaml", "manifest.json", "faces.parquet", "pairs.parquet", "embeddings/sface.parquet",
                "embeddings/color-hist.parquet", "scores/sface.parquet", "scores/color-hist.parquet",
                "results/error_rates.parquet", "results/contrasts.parquet", "results/dose_response.parquet",
                "results/summary.json", "results/generation.json", "results/manipulation_check.parquet", "report.html"]:
        assert (root / rel).exists(), rel
    faces = pd.read_parquet(root / "faces.parquet")
    assert len(faces) == 3 * 2 * 3 and set(faces["source"]) == {"diffusion"}
    assert set(faces["group"]) == {"skin=light", "skin=dark"}
    assert faces.groupby("seed")["face_id"].count().eq(6).all()
    assert faces["prompt"].str.startswith(("a light-skinned face", "a dark-skinned face")).all()
    # noise has no landmarks: measured, not assumed, so the level check says "not in the bin"
    assert not faces["measured_ok"].any() and not faces["in_level"].any()
    for p in faces["path"]:
        assert (root / p).stat().st_size > 0
    # faceless images are fte rows for the real recognizer, and the run reports them
    emb = pd.read_parquet(root / "embeddings/sface.parquet")
    assert len(emb) == len(faces) and (emb["status"] == "fte").all()
    scores = pd.read_parquet(root / "scores/sface.parquet")
    assert (scores["status"] == "fte").all() and scores["score"].isna().all()
    er = pd.read_parquet(root / "results/error_rates.parquet")
    sface = er[er["model"] == "sface"].set_index("group")
    assert set(sface.index) == {"skin=light", "skin=dark", "all"} and (sface["fte_rate"] == 1.0).all()
    assert sface["fmr"].isna().all() and (sface.loc["all", "n_faces"] == len(faces))
    # k = n failures: the exact (Clopper-Pearson) lower bound is (alpha/2) ** (1/n), in closed form
    assert sface.loc["skin=dark", "fte_lo"] == pytest.approx(0.025 ** (1 / 9)) and sface.loc["skin=dark", "fte_hi"] == 1.0
    hist = er[(er["model"] == "color-hist") & (er["edit_attr"] == "all") & (er["group"] == "all")]
    assert len(hist) == 1 and hist["n_genuine"].iloc[0] == 3 * 2 * 2 and hist["fte_rate"].iloc[0] == 0.0
    import json

    summary = json.loads((root / "results/summary.json").read_text())
    assert summary["models"]["sface"]["fte_rate"]["all"]["estimate"] == 1.0
    gen = json.loads((root / "results/generation.json").read_text())
    assert gen["faces_without_landmarks"] == len(faces) and gen["generator"]["identity_sharing"] == 0.8
    html = (root / "report.html").read_text()
    # one FTE tile per face detector: sface's YuNet finds no face in noise, the colour plugin needs none
    assert 'Failure to enrol · detector YuNet</div><div class="value">light 100.0% (9/9)' in html
    assert 'Failure to enrol · detector color-hist</div><div class="value">light 0% (0/9)' in html
    assert "sface enrolled no face (FTE 100.0%)" in (root / "results/summary.md").read_text()
    # the same protocol again: nothing is redone
    again = pipeline.audit(parse_protocol(_protocol(str(tiny_dir))), out, progress=False)
    assert again.ran == [] and "generate" in again.skipped


def test_hub_id_without_network_is_one_line_and_exit_2(tmp_path):
    proto = tmp_path / "hub.yaml"
    proto.write_text(yaml.safe_dump(_protocol("faceaudit-test/not-a-cached-model")))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "FACEAUDIT_WEIGHTS": str(tmp_path / "w"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "faceaudit.cli", "audit", str(proto), "--out", str(tmp_path / "run"),
                           "--no-progress"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "faceaudit-test/not-a-cached-model" in lines[0] and "not available offline" in lines[0]
    assert not (tmp_path / "run" / "faces.parquet").exists()


def test_prompt_slots_and_protocol_schema_fail_early_with_one_line():
    from faceaudit.generate.diffusion.prompts import PromptBuilder
    from faceaudit.protocol import parse_protocol

    builder = PromptBuilder("{skin} face, {edit}", slots={"skin": {"light": "pale", "dark": "dark"}},
                            edit_phrases={"yaw": {"+1": "turned right"}})
    assert builder.prompt("skin=dark", Edit("yaw", 1.0)) == "dark face, turned right"
    assert builder.prompt("skin=light") == "pale face, " + builder.neutral
    with pytest.raises(BadInput, match=r"generator.slots.skin: no phrase for level 'brown'"):
        builder.check(["skin=light", "skin=brown"], [])
    with pytest.raises(BadInput, match="no {edit} slot"):
        PromptBuilder("{skin} face")
    base = _protocol("some/model")
    assert parse_protocol(base).generator.identity_sharing == 0.8
    for bad, where in [({"identity_sharing": 1.5}, "generator.identity_sharing"),
                       ({"resolution": 30}, "generator.resolution"),
                       ({"truncation": 2.5}, "generator.truncation: unknown key")]:
        proto = {**base, "generator": {**base["generator"], **bad}}
        with pytest.raises(BadInput, match=where):
            parse_protocol(proto)


def test_race_by_gender_protocol_on_the_tiny_pipeline(tiny_dir, tmp_path, session_cache):
    """The photoreal-race-gender shape (protected prompt slots crossed into cells, an age edit) through
    the whole audit: cells, columns per attribute, levels measured rather than assumed, every
    manipulation-check and contrast row of a crossed design."""
    from faceaudit.models.human_models import missing_reason

    if missing_reason("faceres") or missing_reason("gender") or missing_reason("age"):
        pytest.skip(missing_reason("faceres") or missing_reason("gender") or missing_reason("age"))
    from faceaudit import pipeline
    from faceaudit.protocol import load_protocol, parse_protocol

    shipped = load_protocol(Path(__file__).resolve().parents[1] / "protocols" / "photoreal-race-gender.yaml")
    proto = _protocol(str(tiny_dir), models=["plugins.color_model:factory"],
                      protected=[{"attribute": "race", "reference": "white", "levels": ["black", "white"]},
                                 {"attribute": "gender", "reference": "male"}],
                      edits=[{"attribute": "age", "levels": [-1, 1]}])
    proto["generator"].update(prompt="{race} {gender}, {edit}", slots={"race": {"black": "black", "white": "white"},
                                                                       "gender": {"female": "woman", "male": "man"}},
                              edit_phrases={"age": {"-1": "young", "+1": "old"}})
    out = tmp_path / "rg"
    ctx = pipeline.audit(parse_protocol(proto), out, progress=False)
    faces = pd.read_parquet(ctx.run.root / "faces.parquet")
    cells = {f"race={r}|gender={g}" for r in ("black", "white") for g in ("female", "male")}
    assert set(faces["group"]) == cells and len(faces) == 3 * 4 * 3
    assert {"race", "gender", "measured_gender_pmale", "measured_age", "measured_age_independent"} <= set(faces.columns)
    assert "skin_tone" not in faces.columns
    assert faces.loc[faces["group"] == "race=black|gender=female", "prompt"].str.startswith("black woman").all()
    # noise shows no face: the gender level is measured (and fails), never assumed from the prompt
    assert faces["measured_gender_pmale"].isna().all() and not faces["in_level"].any()
    c = pd.read_parquet(ctx.run.root / "results" / "contrasts.parquet")
    assert {"cell", "marginal", "interaction"} <= set(c["contrast"])
    assert set(c.loc[c["contrast"] == "interaction", "attribute"]) == {"race:gender"}
    mc = pd.read_parquet(ctx.run.root / "results" / "manipulation_check.parquet")
    assert {"race", "gender", "age"} <= set(mc["edit_attr"])
    gen = json.loads((ctx.run.root / "results" / "generation.json").read_text())
    assert set(gen["levels"]) == {"race=black", "race=white", "gender=female", "gender=male"}
    # the shipped protocol: 3 x 2 cells, CausalFace's edits
    assert len(shipped.group_names) == 6 and [e.attribute for e in shipped.edits] == ["yaw", "lighting", "age", "smile"]


def _chunked_protocol(model: str):
    """3 seeds, one seed per pipeline batch (so three resumable chunks), a prompt edit and the
    photometric exposure edit (no prompt phrase for it: it is applied to the prototype's pixels)."""
    from faceaudit.protocol import parse_protocol

    proto = _protocol(model, edits=[{"attribute": "yaw", "levels": [-1, 1]}, {"attribute": "exposure", "levels": [-1, 1]}])
    proto["generator"]["batch_size"] = 1
    return parse_protocol(proto)


def test_diffusion_generate_resumes_from_finished_chunks(tiny_dir, tmp_path, monkeypatch):
    from faceaudit.generate.diffusion import design
    from faceaudit.harness.executors import get_executor

    protocol = _chunked_protocol(str(tiny_dir))
    gen = design.build_generator(protocol)
    renders: list[tuple] = []
    real_render = gen.render

    def counting_render(seeds, group=None, edit=None, **kw):
        renders.append((tuple(seeds), group, edit))
        return real_render(seeds, group, edit, **kw)

    monkeypatch.setattr(gen, "render", counting_render)
    full = design.generate_diffusion_faces(protocol, tmp_path / "full", progress=False, generator=gen)
    per_chunk = len(renders) // 3
    assert len(full) == 3 * 2 * 5 and per_chunk == 2 * 3  # per seed: 2 cells x (prototype + 2 prompt edits)
    assert not (tmp_path / "full" / ".partial").exists()

    # killed while rendering the second chunk: the first chunk's rows and images stay in .partial
    real_chunk = design._render_chunk
    calls = {"n": 0}

    def crash_on_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(design, "_render_chunk", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        design.generate_diffusion_faces(protocol, tmp_path / "b", progress=False, generator=gen)
    assert len(list((tmp_path / "b" / ".partial").glob("*.parquet"))) == 1
    monkeypatch.setattr(design, "_render_chunk", real_chunk)
    renders.clear()
    resumed = design.generate_diffusion_faces(protocol, tmp_path / "b", progress=False, generator=gen, keep_partial=True)
    # only the two unfinished chunks were rendered again, and the table is the uninterrupted one
    assert len(renders) == 2 * per_chunk and {s for s, _, _ in renders} == {(1,), (2,)}
    assert json.loads((tmp_path / "b" / "results" / "generation.json").read_text())["chunks_resumed"] == 1
    pd.testing.assert_frame_equal(full, resumed)
    assert len(list((tmp_path / "b" / ".partial").glob("*.parquet"))) == 3  # kept for the caller to remove

    # the same chunks on an executor (each worker loads the pipeline once): the same bytes
    remote = design.generate_diffusion_faces(protocol, tmp_path / "ex", progress=False,
                                             executor=get_executor("local", workers=1))
    pd.testing.assert_frame_equal(full, remote)


def test_photometric_edit_applies_to_diffusion_images(tiny_dir, tmp_path):
    """quick.yaml's exposure edit with a diffusion generator: the prototype's pixels, exposed."""
    from faceaudit.generate.diffusion import design
    from faceaudit.generate.photometric import apply_exposure
    from faceaudit.generate.registry import backend_for

    protocol = _chunked_protocol(str(tiny_dir))
    backend = backend_for(protocol)
    assert backend.name == "diffusion"
    backend.check_protocol(protocol)  # no phrase needed for a pixel edit
    faces = design.generate_diffusion_faces(protocol, tmp_path / "run", progress=False)
    root = tmp_path / "run"
    rows = faces.set_index("face_id")
    import cv2

    def read(fid):
        return cv2.cvtColor(cv2.imread(str(root / rows.loc[fid, "path"])), cv2.COLOR_BGR2RGB)

    for level in (-1.0, 1.0):
        fid = f"s00001_dark_exposure_{level:+.1f}"
        assert np.array_equal(read(fid), apply_exposure(read("s00001_dark_none_0"), level))
        assert rows.loc[fid, "prompt"] == rows.loc["s00001_dark_none_0", "prompt"]  # rendered from the prototype's prompt
    assert (rows["edit_attr"] == "exposure").sum() == 3 * 2 * 2
    # a prompt edit with no phrase still fails in one line before anything loads
    bad = protocol.model_copy(update={"edits": [*protocol.edits, protocol.edits[0].model_copy(update={"attribute": "lighting2"})]})
    with pytest.raises(BadInput, match=r"no phrase for edit attribute 'lighting2'") as err:
        backend.check_protocol(bad)
    assert "\n" not in str(err.value)


def test_random_weights_audit_where_no_model_enrols_a_face(tiny_dir, tmp_path, session_cache):
    """The randomly initialised pipeline renders noise: SFace (the only model) enrols no face at all.
    The audit still finishes (exit 0), the card and summary.md say the model enrolled no face, and a
    gate bound on its rates is inconclusive (exit 3), not an internal error."""
    import json

    import yaml
    from typer.testing import CliRunner

    from faceaudit.cli import app

    proto = _protocol(str(tiny_dir), models=["sface"])
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(proto))
    out = tmp_path / "run"
    cli = CliRunner()
    res = cli.invoke(app, ["audit", str(path), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "results" / "summary.json").read_text())
    assert summary["models"]["sface"]["enrolled_nothing"] is True
    assert summary["models"]["sface"]["fte_rate"]["all"]["estimate"] == 1.0
    assert "sface enrolled no face (FTE 100.0%)" in (out / "results" / "summary.md").read_text()
    assert "sface enrolled no face: failure to enrol 100.0%" in " ".join((out / "report.html").read_text().split())
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: tiny\nrules:\n  - metric: fnmr\n    model: sface\n    group: all\n    max: 0.5\n")
    res = cli.invoke(app, ["gate", str(out), "--policy", str(policy)])
    assert res.exit_code == 3, res.output
