"""Run the rating app with uvicorn: loopback by default, one personal link per rater on start."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Callable, Optional

from faceaudit.annotate.plan import PlanSpec
from faceaudit.annotate.store import ensure_plan
from faceaudit.core.errors import BadInput

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 = any free port), so the printed links carry the real port."""
    if not 0 <= port <= 65535:
        raise BadInput(f"--port: must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit this; without it Nagle + delayed ACKs add ~40 ms to every
        # response on a kept-alive connection (uvicorn sets it only on sockets it creates itself)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(addr)
        sock.listen(512)
    except OSError as err:
        raise BadInput(f"--host {host} --port {port}: cannot listen ({err.strerror or err})") from None
    sock.set_inheritable(True)
    return sock


def links(store, base: str) -> list[tuple[str, str]]:
    return [(rater, f"{base}/{'admin' if role == 'admin' else 'r'}/{token}") for rater, role, token in store.tokens()]


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def serve(run_root: str | Path, host: str = "127.0.0.1", port: int = 8000, spec: Optional[PlanSpec] = None,
          announce: Callable[[str], None] = print, export: Optional[Callable[[], dict]] = None) -> None:
    """Plan (first time), bind, print the links, serve until interrupted."""
    import uvicorn

    from faceaudit.annotate.app import create_app

    store = ensure_plan(run_root, spec)
    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    base = f"http://{_url_host(host if host not in ('0.0.0.0', '::') else '127.0.0.1')}:{real_port}"
    app = create_app(run_root, store, export=export)
    if host in LOOPBACK:
        # refuse other Host headers: a web page elsewhere cannot reach this server by DNS rebinding
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]"])
    announce(f"serving {Path(run_root)} on {base} (Ctrl-C to stop; answers are saved as they come)")
    for who, url in links(store, base):
        announce(f"{who}: {url}")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        store.close()
        sock.close()
