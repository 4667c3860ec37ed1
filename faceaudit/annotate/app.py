"""The rating web app (Starlette ASGI, Jinja2 templates) over :class:`~faceaudit.annotate.store.Store`.

URLs carry a per-person token: ``/r/<rater token>`` for a rater, ``/admin/<admin token>`` for
progress and export. A rater's token reaches only that rater's tasks and their images; another
rater's task id answers 404 exactly like an unknown one. Every POST carries the person's CSRF token
(a hidden field, compared in constant time) and, when the browser sends one, an ``Origin`` equal to
the server's. Input is validated here: only the fields a task asks for, each a code of its scale,
an optional comment of at most 500 characters. Anything else is a 4xx and nothing is stored.
Responses forbid inline script, framing and cross-site referrers, so stored text can only ever be
shown inert and the tokens in URLs do not leak to other sites.
"""

from __future__ import annotations

import hmac
import json
import logging
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from faceaudit.annotate.store import AlreadySubmitted, Store
from faceaudit.rating_scales import COMMENT, COMMENT_MAX, IMAGE_QUESTIONS, MONK_COLOURS, SAME

HERE = Path(__file__).parent
MAX_BODY = 8192
SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the raters' own
    # form posts, and the Origin check below needs the real one. Cross-site, nothing is sent.
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
STATIC = {"annotate.css": "text/css; charset=utf-8", "annotate.js": "text/javascript; charset=utf-8"}
log = logging.getLogger("faceaudit.annotate")


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def create_app(run_root: str | Path, store: Store, export: Optional[Callable[[], dict]] = None) -> Starlette:
    """The ASGI app for one run. ``export`` (called by the admin's export button) returns a summary dict."""
    run_root = Path(run_root)
    faces = pd.read_parquet(run_root / "faces.parquet", columns=["face_id", "path"])
    face_paths = dict(zip(faces["face_id"], faces["path"]))
    env = _env()
    statics = {name: (HERE / "static" / name).read_bytes() for name in STATIC}

    def page(name: str, status: int = 200, **ctx) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**ctx), status_code=status, headers=SECURITY_HEADERS)

    def fail(request: Request, status: int, message: str) -> Response:
        if _wants_json(request):
            return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)
        return page("error.html.j2", status=status, status_code=status, message=message)

    def person(token: str, role: str) -> dict:
        who = store.rater_by_token(token) if 16 <= len(token) <= 64 else None
        if who is None or who["role"] != role:
            raise HTTPException(403, "unknown or invalid link")
        return who

    async def read_form(request: Request, who: dict) -> dict[str, str]:
        """The url-encoded body as a dict; 4xx on size, encoding, duplicates, CSRF or Origin."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise HTTPException(415, "forms must be application/x-www-form-urlencoded")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise HTTPException(413, "form too large")
        try:
            fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            raise HTTPException(400, "malformed form") from None
        form: dict[str, str] = {}
        for k, v in fields:
            if k in form:
                raise HTTPException(422, f"field {k!r} given twice")
            form[k] = v
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
            raise HTTPException(403, "cross-site request refused")
        if not hmac.compare_digest(form.pop("csrf", "").encode(), who["csrf"].encode()):
            raise HTTPException(403, "missing or wrong CSRF token")
        return form

    def validate_answers(task: dict, form: dict[str, str]) -> tuple[dict[str, int], str]:
        questions = [SAME] if task["kind"] == "pair" else list(IMAGE_QUESTIONS)
        allowed = {q.key for q in questions} | {COMMENT}
        unknown = sorted(set(form) - allowed)
        if unknown:
            raise HTTPException(422, f"unexpected fields {unknown}")
        answers = {}
        for q in questions:
            raw = form.get(q.key)
            if raw is None or raw == "":
                raise HTTPException(422, f"{q.key}: an answer is required")
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or int(raw) not in q.codes:
                raise HTTPException(422, f"{q.key}: must be one of {list(q.codes)}")
            answers[q.key] = int(raw)
        comment = form.get(COMMENT, "").strip()
        if len(comment) > COMMENT_MAX:
            raise HTTPException(422, f"comment: at most {COMMENT_MAX} characters")
        if any(ord(c) < 32 and c not in "\n\t" for c in comment):
            raise HTTPException(422, "comment: control characters are not allowed")
        return answers, comment

    async def rate_page(request: Request) -> Response:
        token = request.path_params["token"]
        who = person(token, "rater")
        tasks = store.tasks_of(who["rater"])
        task = next((t for t in tasks if not t["done"]), None)
        n_done = sum(t["done"] for t in tasks)
        if task is None:
            return page("done.html.j2", rater=who["rater"], n_done=n_done)
        return page("rate.html.j2", rater=who["rater"], token=token, csrf=who["csrf"], task=task, n_done=n_done,
                    n_tasks=len(tasks), same=SAME, image_questions=IMAGE_QUESTIONS, monk=MONK_COLOURS,
                    comment_max=COMMENT_MAX)

    async def task_list(request: Request) -> Response:
        who = person(request.path_params["token"], "rater")
        tasks = [{"task_id": t["task_id"], "kind": t["kind"], "done": bool(t["done"])} for t in store.tasks_of(who["rater"])]
        return JSONResponse({"rater": who["rater"], "csrf": who["csrf"], "tasks": tasks}, headers=SECURITY_HEADERS)

    async def submit(request: Request) -> Response:
        token, task_id = request.path_params["token"], request.path_params["task_id"]
        who = person(token, "rater")
        form = await read_form(request, who)
        task = store.task(task_id, who["rater"]) if len(task_id) <= 64 else None
        if task is None:
            raise HTTPException(404, "no such task")
        answers, comment = validate_answers(task, form)
        try:
            store.submit(task_id, who["rater"], answers, comment)
        except AlreadySubmitted:
            raise HTTPException(409, "this task was already answered; the first answer is kept") from None
        if _wants_json(request):
            return JSONResponse({"stored": len(answers) + bool(comment)}, status_code=201, headers=SECURITY_HEADERS)
        return RedirectResponse(f"/r/{token}", status_code=303, headers=SECURITY_HEADERS)

    async def image(request: Request) -> Response:
        who = person(request.path_params["token"], "rater")
        task = store.task(request.path_params["task_id"], who["rater"]) if len(request.path_params["task_id"]) <= 64 else None
        slot = request.path_params["slot"]
        if task is None or slot not in ("a", "b") or (slot == "b" and task["kind"] != "pair"):
            raise HTTPException(404, "no such image")
        face = task["face_a"] if slot == "a" else task["face_b"]
        path = run_root / str(face_paths.get(face, ""))
        if face not in face_paths or not path.is_file():
            raise HTTPException(404, "image missing from the run directory")
        return Response(path.read_bytes(), media_type="image/png", headers=SECURITY_HEADERS)

    async def admin_page(request: Request) -> Response:
        token = request.path_params["token"]
        who = person(token, "admin")
        prog = store.progress()
        return page("admin.html.j2", token=token, csrf=who["csrf"], progress=prog.to_dict("records"),
                    total_done=int(prog["n_done"].sum()), total_tasks=int(prog["n_tasks"].sum()),
                    comments=store.recent_comments(), exported=request.query_params.get("exported") == "1")

    async def admin_progress(request: Request) -> Response:
        person(request.path_params["token"], "admin")
        prog = store.progress()
        return JSONResponse({"raters": json.loads(prog.to_json(orient="records")),
                             "n_done": int(prog["n_done"].sum()), "n_tasks": int(prog["n_tasks"].sum())},
                            headers=SECURITY_HEADERS)

    async def admin_export(request: Request) -> Response:
        token = request.path_params["token"]
        who = person(token, "admin")
        await read_form(request, who)
        if export is None:
            raise HTTPException(404, "export is not enabled on this server")
        summary = export()
        if _wants_json(request):
            return JSONResponse(summary, headers=SECURITY_HEADERS)
        return RedirectResponse(f"/admin/{token}?exported=1", status_code=303, headers=SECURITY_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in statics:
            raise HTTPException(404, "not found")
        return Response(statics[name], media_type=STATIC[name], headers={**SECURITY_HEADERS, "cache-control": "max-age=3600"})

    async def index(request: Request) -> Response:
        return page("error.html.j2", status=200, status_code=200,
                    message="faceaudit annotation server: open the personal link you were given.")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return fail(request, exc.status_code, exc.detail)

    async def server_error(request: Request, exc: Exception) -> Response:  # a bug: logged, never shown in detail
        log.exception("internal error on %s", request.url.path)
        return fail(request, 500, "internal error")

    routes = [
        Route("/", index),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/r/{token}", rate_page),
        Route("/r/{token}/tasks.json", task_list),
        Route("/r/{token}/t/{task_id}", submit, methods=["POST"]),
        Route("/r/{token}/img/{task_id}/{slot}", image),
        Route("/admin/{token}", admin_page),
        Route("/admin/{token}/progress.json", admin_progress),
        Route("/admin/{token}/export", admin_export, methods=["POST"]),
        Route("/static/{name}", static),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})
