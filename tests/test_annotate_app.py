"""The rating app through its HTTP interface (Starlette's TestClient: the real ASGI app, no server).

Hostile and malformed input must get a 4xx, never a 500, and never be stored as a rating; a replay
is stored once; the plan is balanced. The real server in a real browser: test_annotate_browser.py.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from starlette.testclient import TestClient

from faceaudit.annotate.app import create_app
from faceaudit.annotate.plan import PlanSpec, build_plan
from faceaudit.annotate.store import ensure_plan
from faceaudit.api import annotate_export
from faceaudit.core.errors import BadInput
from faceaudit.rating_scales import IMAGE_QUESTIONS

SPEC = PlanSpec(n_raters=3, raters_per_item=2, pairs_per_cell=1, images_per_cell=1, seed=4)
IMAGE_OK = {q.key: str(q.codes[0]) for q in IMAGE_QUESTIONS}


@pytest.fixture
def served(synthetic_run):
    store = ensure_plan(synthetic_run, SPEC)
    client = TestClient(create_app(synthetic_run, store, export=lambda: annotate_export(synthetic_run)),
                        raise_server_exceptions=False)
    tokens = {who: token for who, _, token in store.tokens()}
    yield synthetic_run, store, client, tokens
    store.close()


def _tasks(client, token):
    r = client.get(f"/r/{token}/tasks.json")
    assert r.status_code == 200
    return r.json()


def _stored(store) -> pd.DataFrame:
    return store.ratings()


def test_plan_is_balanced_and_randomised(synthetic_run):
    faces = pd.read_parquet(synthetic_run / "faces.parquet")
    pairs = pd.read_parquet(synthetic_run / "pairs.parquet")
    plan = build_plan(faces, pairs, PlanSpec(n_raters=5, raters_per_item=3, pairs_per_cell=2, seed=1))
    real = plan[plan["check_kind"] == ""]
    # every item is seen by exactly 3 distinct raters
    assert (real.groupby("item")["rater"].nunique() == 3).all()
    assert (real.groupby("item").size() == 3).all()
    # genuine and impostor pairs from every group x edit condition
    rated = pairs[pairs["pair_id"].astype(str).isin(real.loc[real["kind"] == "pair", "item"])]
    for kind in ("genuine", "impostor"):
        cells = set(map(tuple, pairs[pairs["kind"] == kind][["group", "edit_attr", "edit_level"]].drop_duplicates().to_numpy()))
        got = rated[rated["kind"] == kind].groupby(["group", "edit_attr", "edit_level"]).size()
        assert set(got.index) == cells and (got == 2).all()
    # images of every group and edit condition
    img = faces[faces["face_id"].isin(real.loc[real["kind"] == "image", "item"])]
    assert len(img.groupby(["group", "edit_attr", "edit_level"])) == len(faces.groupby(["group", "edit_attr", "edit_level"]))
    # attention checks: 2 identical and 2 obviously different per rater, from different seeds and groups
    checks = plan[plan["check_kind"] != ""]
    assert (checks.groupby("rater")["check_kind"].value_counts().unstack() == 2).all().all()
    ident = checks[checks["check_kind"] == "identical"]
    assert (ident["face_a"] == ident["face_b"]).all()
    diff = checks[checks["check_kind"] == "different"].merge(faces[["face_id", "seed", "group"]], left_on="face_a", right_on="face_id") \
        .merge(faces[["face_id", "seed", "group"]], left_on="face_b", right_on="face_id", suffixes=("_a", "_b"))
    assert ((diff["seed_a"] != diff["seed_b"]) & (diff["group_a"] != diff["group_b"])).all()
    # orders differ between raters, and the plan (ids aside) is reproducible
    orders = [tuple(g.sort_values("position")["kind"] + g.sort_values("position")["item"]) for _, g in plan.groupby("rater")]
    assert len(set(orders)) == 5
    again = build_plan(faces, pairs, PlanSpec(n_raters=5, raters_per_item=3, pairs_per_cell=2, seed=1))
    assert again.drop(columns="task_id").equals(plan.drop(columns="task_id"))
    assert not set(again["task_id"]) & set(plan["task_id"])


def test_rater_flow_resume_and_export(served):
    run, store, client, tokens = served
    token = tokens["rater01"]
    page = client.get(f"/r/{token}")
    assert page.status_code == 200 and "Task 1 of" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    action = re.search(r'action="(/r/[^"]+)"', page.text).group(1)
    listing = _tasks(client, token)
    first = listing["tasks"][0]
    assert action.endswith(first["task_id"])
    form = {"same": "4"} if first["kind"] == "pair" else dict(IMAGE_OK)
    r = client.post(action, data={"csrf": csrf, **form, "comment": "fine"}, follow_redirects=False)
    assert r.status_code == 303
    # a fresh GET (a reload, or a new session on the same link) resumes at task 2
    again = client.get(f"/r/{token}")
    assert "Task 2 of" in again.text and listing["tasks"][1]["task_id"] in again.text
    img = client.get(f"/r/{token}/img/{listing['tasks'][1]['task_id']}/a")
    assert img.status_code == 200 and img.content[:8] == b"\x89PNG\r\n\x1a\n"
    summary = annotate_export(run)
    ann = pd.read_parquet(run / "annotations.parquet")
    assert summary["ratings"] == len(ann) == len(form) + 1
    assert set(ann["rater"]) == {"rater01"} and set(ann["task_id"]) == {first["task_id"]}
    assert ann.loc[ann["question"] == "comment", "text"].tolist() == ["fine"]
    assert {"rater", "task_id", "kind", "item", "question", "value", "created_at"} <= set(ann.columns)


def test_hostile_input_gets_4xx_and_is_never_stored(served):
    run, store, client, tokens = served
    a, b = tokens["rater01"], tokens["rater02"]
    la, lb = _tasks(client, a), _tasks(client, b)
    pair = next(t for t in la["tasks"] if t["kind"] == "pair")
    image = next(t for t in la["tasks"] if t["kind"] == "image")
    other = lb["tasks"][0]
    url = f"/r/{a}/t/{pair['task_id']}"
    ok = {"csrf": la["csrf"], "same": "5"}
    cases = {
        "out of range": (url, {**ok, "same": "6"}, 422),
        "zero": (url, {**ok, "same": "0"}, 422),
        "negative": (url, {**ok, "same": "-1"}, 422),
        "not a number": (url, {**ok, "same": "five"}, 422),
        "float": (url, {**ok, "same": "4.5"}, 422),
        "huge": (url, {**ok, "same": "9" * 400}, 422),
        "missing answer": (url, {"csrf": la["csrf"]}, 422),
        "unknown field": (url, {**ok, "is_admin": "1"}, 422),
        "image answer on a pair": (url, {**ok, "skin": "3"}, 422),
        "image incomplete": (f"/r/{a}/t/{image['task_id']}", {"csrf": la["csrf"], **{**IMAGE_OK, "skin": "11"}}, 422),
        "unknown task": (f"/r/{a}/t/{'0' * 16}", ok, 404),
        "another rater's task": (f"/r/{a}/t/{other['task_id']}", ok, 404),
        "another rater's task, their csrf": (f"/r/{a}/t/{other['task_id']}", {**ok, "csrf": lb["csrf"]}, 403),
        "missing csrf": (url, {"same": "5"}, 403),
        "wrong csrf": (url, {**ok, "csrf": "x" * 32}, 403),
        "other rater's csrf": (url, {**ok, "csrf": lb["csrf"]}, 403),
        "unknown rater token": (f"/r/{'A' * 32}/t/{pair['task_id']}", ok, 403),
        "overlong comment": (url, {**ok, "comment": "x" * 501}, 422),
        "control characters": (url, {**ok, "comment": "a\x00b"}, 422),
    }
    for name, (target, form, status) in cases.items():
        r = client.post(target, data=form, follow_redirects=False)
        assert r.status_code == status, (name, r.status_code, r.text[:200])
    # a form posted from another site (browser sends its Origin) and non-form bodies
    assert client.post(url, data=ok, headers={"origin": "http://evil.example"}).status_code == 403
    assert client.post(url, content=b'{"same": 5}', headers={"content-type": "application/json"}).status_code == 415
    assert client.post(url, content=b"same=5&same=1&csrf=" + la["csrf"].encode(),
                       headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 422
    assert client.post(url, content=b"\xff\xfe=1", headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 400
    assert client.post(url, content=b"x=" + b"a" * 20000, headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 413
    # reading another rater's task list or images with one's own token
    assert client.get(f"/r/{a}/img/{other['task_id']}/a").status_code == 404
    assert client.get(f"/r/{a}/img/{pair['task_id']}/c").status_code == 404
    assert client.get(f"/r/{a}/img/{image['task_id']}/b").status_code == 404
    assert _stored(store).empty, "a rejected submission was stored"

    # script text in a comment is stored verbatim and shown escaped on the admin page
    hostile = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    assert client.post(url, data={**ok, "comment": hostile}, follow_redirects=False).status_code == 303
    # the replay (same form again) and a different answer to the same task: 409, stored once
    assert client.post(url, data={**ok, "comment": hostile}, follow_redirects=False).status_code == 409
    assert client.post(url, data={**ok, "same": "1"}, follow_redirects=False).status_code == 409
    stored = _stored(store)
    assert len(stored) == 2 and stored.loc[stored["question"] == "same", "value"].tolist() == [5]
    assert stored.loc[stored["question"] == "comment", "text"].tolist() == [hostile]
    admin = client.get(f"/admin/{tokens['admin']}")
    assert admin.status_code == 200
    assert hostile not in admin.text and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in admin.text


def test_admin_only_with_admin_token(served):
    run, store, client, tokens = served
    rater = tokens["rater01"]
    for path in ("/admin/", f"/admin/{rater}", f"/admin/{'B' * 32}", f"/admin/{rater}/progress.json"):
        assert client.get(path).status_code in (403, 404), path
    la = _tasks(client, rater)
    assert client.post(f"/admin/{rater}/export", data={"csrf": la["csrf"]}).status_code == 403
    admin = tokens["admin"]
    assert client.get(f"/r/{admin}").status_code == 403  # the admin link is not a rater link
    # the admin's own export also needs the admin's CSRF token
    assert client.post(f"/admin/{admin}/export", data={"csrf": la["csrf"]}).status_code == 403
    assert not (run / "annotations.parquet").exists()
    page = client.get(f"/admin/{admin}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post(f"/admin/{admin}/export", data={"csrf": csrf}, headers={"accept": "application/json"})
    assert r.status_code == 200 and r.json()["ratings"] == 0
    assert (run / "annotations.parquet").exists()
    prog = client.get(f"/admin/{admin}/progress.json").json()
    assert prog["n_done"] == 0 and len(prog["raters"]) == SPEC.n_raters


def test_replanning_with_other_rater_count_is_refused(served):
    run, *_ = served
    with pytest.raises(BadInput, match="already planned for 3 raters"):
        ensure_plan(run, PlanSpec(n_raters=4))


def test_export_without_annotations_is_bad_input(synthetic_run):
    with pytest.raises(BadInput, match="no annotations yet"):
        annotate_export(synthetic_run)


def test_cli_annotate_errors_are_one_line_exit_2(synthetic_run, tmp_path):
    from typer.testing import CliRunner

    from faceaudit.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["annotate", "export", str(synthetic_run)])
    assert r.exit_code == 2 and "no annotations yet" in r.output
    (synthetic_run / "annotations.sqlite").write_text("not a database, just text " * 100)
    r = runner.invoke(app, ["annotate", "export", str(synthetic_run)])
    assert r.exit_code == 2 and "not a faceaudit annotations database" in r.output
    r = runner.invoke(app, ["annotate", "serve", str(tmp_path / "absent")])
    assert r.exit_code == 2 and "faces.parquet: missing" in r.output
    assert not (tmp_path / "absent" / "annotations.sqlite").exists()
    r = runner.invoke(app, ["annotate", "plan", "--raters-per-pair", "3,6", "--pairs", "100"])
    assert r.exit_code == 0 and "coverage" in r.output


def test_a_plan_that_cannot_be_made_leaves_no_database(synthetic_run):
    with pytest.raises(BadInput, match="nothing to rate"):
        ensure_plan(synthetic_run, PlanSpec(n_raters=2, raters_per_item=1, pairs_per_cell=0, images_per_cell=0))
    assert not (synthetic_run / "annotations.sqlite").exists()
    pd.read_parquet(synthetic_run / "pairs.parquet").drop(columns="kind").to_parquet(synthetic_run / "pairs.parquet")
    with pytest.raises(BadInput, match=r"pairs.parquet: missing columns \['kind'\]"):
        ensure_plan(synthetic_run, SPEC)
