"""The rating app as raters use it: the real server (`faceaudit annotate serve`, uvicorn on
127.0.0.1) driven by Playwright in Debian's headless Chromium, with every request off loopback
blocked and recorded. Also the model card's human-evaluation section in headless Chromium with the
network blocked.

Needs /usr/bin/chromium (`make browser`); fails without it (tests/_promised.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium not installed (make browser)")
ROOT = Path(__file__).resolve().parents[1]
IMAGE_KEYS = {"gender": "2", "age": "3", "skin": "7", "expression": "2", "realism": "4"}
HOSTILE = '<script>window.pwned = 1</script><img src="/x" onerror="window.pwned = 2">'


@pytest.fixture(scope="module")
def server(synthetic_run_template, tmp_path_factory):
    """`faceaudit annotate serve RUN --port 0 --raters 2` in a subprocess; yields (run, links)."""
    run = Path(shutil.copytree(synthetic_run_template, tmp_path_factory.mktemp("annotate-browser") / "run"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "faceaudit.cli", "annotate", "serve", str(run), "--port", "0",
                             "--raters", "2", "--per-item", "2", "--pairs-per-cell", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    links, lines, deadline = {}, [], time.monotonic() + 90
    try:
        while "admin" not in links:
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "server did not start:\n" + "".join(lines)
            lines.append(line)
            m = re.match(r"(\w+): (http://127\.0\.0\.1:\d+/\S+)$", line.strip())
            if m:
                links[m.group(1)] = m.group(2)
        assert lines[0].startswith("serving ") and set(links) == {"rater01", "rater02", "admin"}
        yield run, links
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _context(browser, off_loopback: list, **kw):
    ctx = browser.new_context(**kw)

    def guard(route):
        if re.match(r"^http://127\.0\.0\.1:\d+/", route.request.url):
            route.continue_()
        else:
            off_loopback.append(route.request.url)
            route.abort()

    ctx.route("**/*", guard)
    return ctx


def _current(page) -> tuple[str, str]:
    form = page.locator("form.task")
    return form.get_attribute("data-kind"), form.get_attribute("data-task")


def _answer(page, i: int, sent: dict) -> None:
    """Answer the current task, by mouse on even i and by keyboard on odd i; record what was sent."""
    kind, task = _current(page)
    with page.expect_navigation():
        if kind == "pair":
            value = str(1 + i % 5)
            if i % 2:
                page.keyboard.press(value)
            else:
                page.click(f'button[name="same"][value="{value}"]')
            sent[task] = {"same": int(value)}
        else:
            if i % 2:
                for key in IMAGE_KEYS.values():
                    page.keyboard.press(key)
                page.keyboard.press("Enter")
                sent[task] = {q: int(k) for q, k in IMAGE_KEYS.items()}
            else:
                page.click('fieldset[data-q="gender"] label:has-text("Feminine")')
                page.click('fieldset[data-q="age"] label:has-text("65 or older")')
                page.click('fieldset[data-q="skin"] label:has-text("Monk 10")')
                page.click('fieldset[data-q="expression"] label:has-text("Neutral")')
                page.click('fieldset[data-q="realism"] label:has-text("Certainly")')
                page.click("button.submit")
                sent[task] = {"gender": 1, "age": 5, "skin": 10, "expression": 1, "realism": 5}


def test_rater_rates_with_mouse_and_keyboard_reloads_and_resumes(server, browser):
    run, links = server
    blocked: list = []
    ctx = _context(browser, blocked)
    page = ctx.new_page()
    page.goto(links["rater01"])
    n_tasks = int(re.search(r"of (\d+)", page.locator("#progress").inner_text()).group(1))
    sent: dict = {}
    i = 0
    # rate until both kinds were answered both ways (at least 6 tasks)
    while i < 6 or len({(next(iter(v)), j % 2) for j, v in enumerate(sent.values())}) < 4:
        _answer(page, i, sent)
        i += 1
        assert i < 40, "never met an image task"
    before = _current(page)
    page.reload()
    assert _current(page) == before, "a reload must show the same open task"
    assert page.locator("#progress").inner_text() == f"Task {i + 1} of {n_tasks}"
    # a new browser session on the same link resumes there too
    page2 = ctx.new_page()
    page2.goto(links["rater01"])
    assert _current(page2) == before
    page2.close()
    # a comment with script in it, typed into the form
    kind, task = before
    page.click("details.comment summary")
    page.fill("textarea[name=comment]", HOSTILE)
    _answer(page, i, sent)
    assert page.evaluate("window.pwned") is None
    ctx.close()
    assert blocked == []

    ann = _export(run)
    mine = ann[ann["rater"] == "rater01"]
    got = {t: dict(zip(g["question"], g["value"])) for t, g in mine[mine["question"] != "comment"].groupby("task_id")}
    assert got == sent
    assert mine.loc[mine["question"] == "comment", "text"].tolist() == [HOSTILE]


def _export(run: Path) -> pd.DataFrame:
    from faceaudit.api import annotate_export

    annotate_export(run)
    return pd.read_parquet(run / "annotations.parquet")


def test_other_rater_cannot_read_or_write_and_admin_needs_its_token(server, browser):
    run, links = server
    base = re.match(r"(http://[^/]+)", links["admin"]).group(1)
    blocked: list = []
    ctx = _context(browser, blocked)
    page = ctx.new_page()
    # rater02's own task list, then rater01's tasks through rater02's token
    page.goto(links["rater02"])
    b_csrf = page.locator("input[name=csrf]").get_attribute("value")
    b_token = links["rater02"].rsplit("/", 1)[1]
    a_tasks = page.request.get(links["rater01"] + "/tasks.json").json()["tasks"]
    b_tasks = page.request.get(links["rater02"] + "/tasks.json").json()["tasks"]
    assert not {t["task_id"] for t in a_tasks} & {t["task_id"] for t in b_tasks}
    assert all(a["task_id"] not in page.content() for a in a_tasks)
    target = next(t for t in a_tasks if not t["done"] and t["kind"] == "pair")
    assert page.request.get(f"{base}/r/{b_token}/img/{target['task_id']}/a").status == 404
    r = page.request.post(f"{base}/r/{b_token}/t/{target['task_id']}", form={"csrf": b_csrf, "same": "5"})
    assert r.status == 404
    # progress and export without the admin token (a rater's token, a made-up one, none)
    for url in (f"{base}/admin/{b_token}", f"{base}/admin/{'Z' * 32}", f"{base}/admin/", f"{base}/admin/{b_token}/progress.json"):
        assert page.request.get(url).status in (403, 404), url
    assert page.request.post(f"{base}/admin/{b_token}/export", form={"csrf": b_csrf}).status == 403
    assert not (run / "annotations.parquet").exists() or _export(run)["task_id"].isin([target["task_id"]]).sum() == 0
    # a page on another site that reaches the server through DNS rebinding sends its own Host name
    import httpx

    assert httpx.get(links["admin"], headers={"host": "evil.example"}).status_code == 400
    # the admin page shows progress; the stored comment (if the first test ran) is inert text
    page.goto(links["admin"])
    assert page.locator("#total").is_visible()
    assert page.evaluate("window.pwned") is None
    ctx.close()
    assert blocked == []


def test_phone_sized_screen(server, browser):
    _, links = server
    blocked: list = []
    ctx = _context(browser, blocked, viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    page.goto(links["rater02"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    kind, _ = _current(page)
    if kind == "pair":
        for v in range(1, 6):
            box = page.locator(f'button[name="same"][value="{v}"]').bounding_box()
            assert box["width"] >= 200 and box["height"] >= 44  # full-width touch targets
    for img in page.locator(".faces img").all():
        box = img.bounding_box()
        assert 0 < box["x"] and box["x"] + box["width"] <= 375
    ctx.close()
    assert blocked == []


def test_model_card_human_section_in_chromium_with_network_blocked(synthetic_run_template, tmp_path):
    from test_report_browser import run_chromium

    from faceaudit.annotate.plan import PlanSpec
    from faceaudit.annotate.simulate import RaterModel, simulate_annotations
    from faceaudit.api import annotate_export
    from faceaudit.report import fmt, render_report

    from faceaudit.api import load_run
    from faceaudit.report.human import human_section

    assert human_section(load_run(synthetic_run_template), ["skin=light"]) is None  # no ratings, no section

    run = Path(shutil.copytree(synthetic_run_template, tmp_path / "rated"))
    simulate_annotations(run, PlanSpec(n_raters=8, raters_per_item=4, pairs_per_cell=2, seed=2), RaterModel(seed=2))
    annotate_export(run)
    report = render_report(run)
    dom, requests, _ = run_chromium(report.as_uri(), tmp_path)
    assert requests == []
    section = dom[dom.index('id="human-evaluation"'):]
    assert "7.6 Human evaluation" in section and "Model vs human consensus, per group" in section
    hvm = pd.read_parquet(run / "results" / "human_vs_machine.parquet")
    body = section[section.index("<tbody>"):section.index("</tbody>")]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    assert len(rows) == len(hvm) == 2 * 4  # two models x (three groups + all)
    for r, cells in zip(hvm.itertuples(), rows):
        text = re.findall(r"<td[^>]*>(.*?)</td>", cells)
        assert text[0] == r.model and text[3] == fmt.num(r.auc) and text[7] == fmt.pct(r.machine_fnmr)
    for heading in ("Mean consensus identity of rated genuine pairs", "Perceived attributes, by group", "Inter-rater agreement"):
        assert heading in section
    # the section's tables are not also listed as unexplained "other results"
    assert "results/human_identity.parquet</code> (" not in dom
