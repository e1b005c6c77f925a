"""``isekai-gen review``: a local web app over a build folder, on Starlette + uvicorn.

Starlette because it is small, well kept and needs nothing else (no template engine: the pages
are static HTML + vanilla JavaScript from package data, filled from a JSON API; no build step,
no CDN, works offline). Routes:

- ``/``, ``/concept/<id>``: the two pages; ``/static/*``: their script and style sheet.
- ``/api/overview``, ``/api/concept/<id>``: page data (``data.BuildView``) plus the decision state.
- ``POST /api/decide`` ``{"job_id", "action": "reject"|"restore", "client"}``, ``POST /api/undo``
  ``{"client"}``: decisions (``decisions.py``), written at once to ``OUT/manual_rejects.txt``.
- ``/thumb/<job_id>``, ``/image/<job_id>``: a JPEG thumbnail (``thumbs.py``) or the full image.
  Only images named by the manifest are served, by job id, each through ``paths.contained``:
  a URL never names a file, so ``/image/../../run.json`` and its encodings are refused.

Security: bound to 127.0.0.1 by default. A non-loopback ``--host`` requires a random token
(``secrets.token_urlsafe``) given once in the printed URL and kept in an HttpOnly cookie; every
request without it gets 403. POSTs must be ``application/json`` (a cross-site form cannot send
that without a CORS preflight this server never grants), their Origin, when sent, must be this
server (Host), and the Host header must be a loopback name on loopback (DNS-rebinding pages cannot
reach the API).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import UserError
from ..paths import contained
from . import decisions
from .data import BuildData, BuildView, pending
from .thumbs import thumbnail_bytes

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "isekai_review_token"
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def rebuild_command(out_dir: Path) -> str:
    """The command that applies the decisions: a rebuild with the preset the folder was made with."""
    from ..config import load_config
    from ..resources import preset_names
    from ..run_info import read_run

    try:
        name = read_run(out_dir).get("config", {}).get("name")
    except UserError:
        name = None
    for preset in preset_names():
        if name is not None and load_config(preset).name == name:
            return f"isekai-gen build --preset {preset} --out {out_dir}"
    return f"isekai-gen build --out {out_dir} --config YOUR_CONFIG"


class Refused(Exception):
    """An image request answered with ``status`` and a one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class TokenGate:
    """ASGI middleware: every request needs the access token, as ``?token=`` once, then the cookie."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    def _matches(self, given: str | None) -> bool:
        return given is not None and secrets.compare_digest(given.encode(), self.token)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        if self._matches(request.query_params.get("token")):
            # Drop the token from the address bar (history, Referer) once it is in the cookie.
            query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token.decode(), httponly=True, samesite="strict")
            return await response(scope, receive, send)
        if self._matches(request.cookies.get(TOKEN_COOKIE)):
            return await self.app(scope, receive, send)
        return await PlainTextResponse("403: open the URL with the access token printed by `isekai-gen review`",
                                       status_code=403)(scope, receive, send)


def create_app(out_dir: Path, *, host: str = "127.0.0.1", token: str | None = None) -> Starlette:
    """The review app over ``out_dir``; ``token`` is required when ``host`` is not loopback."""
    out_dir = Path(out_dir)
    if not is_loopback(host) and not token:
        raise UserError(f"review: binding {host} (not loopback) needs an access token")
    data = BuildData(out_dir)
    data.view()  # a missing or invalid manifest fails now, in one line, not on the first page
    command = rebuild_command(out_dir)

    def state(view: BuildView, manual: set[str]) -> dict:
        waiting = pending(view.rows, manual)
        return {"manual": sorted(manual), "pending": waiting,
                "pending_count": len(waiting["reject"]) + len(waiting["restore"]), "rebuild": command}

    def image_of(request: Request) -> tuple[dict, Path]:
        """The manifest row and contained image path the URL's job id names; a 403/404 ``Refused`` if none."""
        row = data.view().rows.get(request.path_params["job_id"])
        if row is None or row.get("status") != "ok" or not row.get("image"):
            raise Refused(404, "no such image in the manifest")
        try:
            return row, contained(out_dir, row["image"], what="image", source=out_dir / "manifest.jsonl")
        except UserError as exc:
            raise Refused(403, str(exc)) from None

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / ("concept.html" if "concept_id" in request.path_params else "overview.html"))

    async def overview(request: Request) -> Response:
        view = data.view()
        return JSONResponse({**view.overview, "out_dir": str(out_dir), **state(view, data.manual(view))})

    async def concept(request: Request) -> Response:
        view = data.view()
        concept_id = request.path_params["concept_id"]
        if concept_id not in view.items:
            return JSONResponse({"error": f"unknown concept {concept_id!r}"}, status_code=404)
        partner = view.partner[concept_id]
        summaries = {c["id"]: c for g in view.overview["groups"] for c in g["concepts"]}
        return JSONResponse({
            "concept": summaries[concept_id], "partner": summaries.get(partner), "items": view.items[concept_id],
            "partner_kept": view.best_kept.get(partner, []), "smoke_test": view.smoke_test,
            **state(view, data.manual(view)),
        })

    async def decide(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "decisions are JSON requests"}, status_code=415)
        origin = request.headers.get("origin")  # browsers send it with every POST
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            return JSONResponse({"error": f"decisions come from this server's own pages, not {origin}"}, status_code=403)
        try:
            body = json.loads(await request.body())
            client = str(body.get("client", ""))[:64] or "anonymous"
        except (json.JSONDecodeError, AttributeError):
            return JSONResponse({"error": "request body is not a JSON object"}, status_code=400)
        view = data.view()
        known = view.rows.keys()
        try:
            # Off the event loop: the list's lock may be held by another writer, and the history fsyncs.
            if request.url.path.endswith("/undo"):
                record = await run_in_threadpool(decisions.undo, out_dir, known, client)
            else:
                record = await run_in_threadpool(decisions.decide, out_dir, known, str(body.get("job_id")),
                                                 str(body.get("action")), client)
        except UserError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"record": record, **state(view, data.manual(view))})

    async def thumb(request: Request) -> Response:
        row, source = image_of(request)
        try:  # decoding a missing thumbnail takes milliseconds: off the event loop
            jpeg = await run_in_threadpool(thumbnail_bytes, out_dir, source, row["sha256"])
        except UserError as exc:  # an undecodable image
            raise Refused(422, str(exc)) from None
        # The page asks for /thumb/<job>?v=<sha>: a new image is a new URL, so caching is safe.
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=604800"})

    async def image(request: Request) -> Response:
        _, path = image_of(request)
        if not path.is_file():
            raise Refused(404, "image file missing")
        return FileResponse(path)

    routes = [
        Route("/", page), Route("/concept/{concept_id}", page),
        Route("/api/overview", overview), Route("/api/concept/{concept_id}", concept),
        Route("/api/decide", decide, methods=["POST"]), Route("/api/undo", decide, methods=["POST"]),
        Route("/thumb/{job_id}", thumb), Route("/image/{job_id}", image),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = []
    if is_loopback(host):
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"]))
    if token:
        middleware.append(Middleware(TokenGate, token=token))
    # A build may leave the folder in a state the pages cannot show (an invalid list or manifest):
    # say so in one line instead of a bare 500.
    async def user_error(request: Request, exc: UserError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=409)

    async def refused(request: Request, exc: Refused) -> Response:
        return PlainTextResponse(f"{exc.status}: {exc}", status_code=exc.status)

    return Starlette(routes=routes, middleware=middleware, exception_handlers={UserError: user_error, Refused: refused})


def make_server(out_dir: Path, *, host: str = "127.0.0.1", port: int = 8765):
    """A uvicorn server for the review app and the URL to open (with the token when exposed)."""
    import uvicorn

    token = None if is_loopback(host) else secrets.token_urlsafe(24)
    app = create_app(out_dir, host=host, token=token)
    # Bound to every interface: the URL a colleague can open names this machine.
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")), url


def listen(host: str, port: int) -> socket.socket:
    """The bound socket, or one line (uvicorn would log a traceback-free error and exit instead)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UserError(f"review: cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host") from None
    return sock


def serve(out_dir: Path, *, host: str = "127.0.0.1", port: int = 8765, echo=print) -> None:
    """Run the review server until interrupted; print its URL once."""
    server, url = make_server(out_dir, host=host, port=port)
    sock = listen(host, port)
    echo(f"review: open {url}")
    server.run(sockets=[sock])
