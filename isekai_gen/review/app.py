"""``isekai-gen review``: a local web app over a build folder, on Starlette + uvicorn.

Starlette because it is small, well kept and needs nothing else (no template engine: the pages
are static HTML + vanilla JavaScript from package data, filled from a JSON API; no build step,
no CDN, works offline). Routes:

- ``/``, ``/concept/<id>``: the two pages; ``/static/*``: their script and style sheet.
- ``/api/overview``, ``/api/concept/<id>``: page data (``data.BuildView``) plus the decision state.
- ``POST /api/decide`` ``{"job_ids": [...], "action": "reject"|"restore", "client"}`` (one job or a
  bulk action, one undo), ``POST /api/undo`` ``{"client"}`` (409 when the images changed since):
  decisions (``decisions.py``), written at once to ``OUT/manual_rejects.txt``; ``GET /api/state``:
  the decision state alone, which open pages poll every second to show other tabs' decisions.
- ``/thumb/<job_id>``, ``/image/<job_id>``: a JPEG thumbnail (``thumbs.py``) or the full image.
  Only images named by the manifest are served, by job id, each through ``paths.contained``:
  a URL never names a file, so ``/image/../../run.json`` and its encodings are refused.

Security: bound to 127.0.0.1 by default. A non-loopback ``--host`` requires a random token
(``secrets.token_urlsafe``) given once in the printed URL and kept in an HttpOnly cookie; every
request without it gets 403. POSTs must be ``application/json`` (a cross-site form cannot send
that without a CORS preflight this server never grants), their Origin, when sent, must be this
server (Host), and the Host header must be a loopback name on loopback (DNS-rebinding pages cannot
reach the API).

Limits: a decision body over ``MAX_BODY`` bytes is refused with 413 before it is read whole, one not
read within ``BODY_SECONDS`` with 408, one that is not a UTF-8 JSON object (or nests too deep for
the parser) with 400; no request runs longer than ``REQUEST_SECONDS`` (503), and a connection
whose request headers are not complete within ``HEADER_SECONDS`` is closed.
"""

from __future__ import annotations

import asyncio
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
from ..curation import decisions
from ..curation.data import BuildData, BuildView, pending
from ..curation.pending import apply_command
from ..curation.thumbs import thumbnail_bytes

STATIC = Path(__file__).parent / "static"
MAX_BODY = 256 * 1024    # a bulk decision of decisions.MAX_JOBS job ids is ~100 KB
HEADER_SECONDS = 10.0    # to send a request's headers (else the connection is closed)
BODY_SECONDS = 10.0      # to send a decision's body
REQUEST_SECONDS = 30.0   # for any request, an image included
TOKEN_COOKIE = "isekai_review_token"
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Refused(Exception):
    """An image request answered with ``status`` and a one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class Deadline:
    """ASGI middleware: a request still unanswered after ``seconds`` gets 503 (its work is cancelled).

    Hand-written: Starlette and uvicorn bound idle keep-alive connections, not a request's time."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracked), self.seconds)
        except asyncio.TimeoutError:
            if not started:
                await PlainTextResponse("503: the request took too long", status_code=503)(scope, receive, send)


async def read_json_object(request: Request) -> dict:
    """The request's JSON object body, within ``MAX_BODY`` bytes and ``BODY_SECONDS``; else ``Refused``."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise Refused(413, f"request body over {MAX_BODY} bytes")
    chunks, size = [], 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise Refused(413, f"request body over {MAX_BODY} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), BODY_SECONDS)
    except asyncio.TimeoutError:
        raise Refused(408, f"request body not received within {BODY_SECONDS:g} s") from None
    try:
        body = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: '[' * 100000
        raise Refused(400, "request body is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "request body is not a JSON object")
    return body


def job_ids_of(body: dict) -> list[str]:
    """``job_ids`` (a list of strings) or a single ``job_id`` of a decision body; else ``Refused``."""
    ids = body.get("job_ids", [body["job_id"]] if "job_id" in body else None)
    if not isinstance(ids, list) or not all(isinstance(j, str) for j in ids):
        raise Refused(400, "a decision names job_ids, a list of job id strings")
    return ids


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
    view = data.view()  # a missing or invalid manifest fails now, in one line, not on the first page
    decisions.recover(out_dir, set(view.rows))  # a decision a kill interrupted is completed first
    command = apply_command(out_dir)

    def state(view: BuildView, manual: dict[str, str | None]) -> dict:
        """The decision state every answer carries, so a page redraws counts and banners from it."""
        waiting = pending(view.rows, set(manual))
        seen = data.reviewed()
        return {"manual": sorted(manual), "reasons": {j: why for j, why in sorted(manual.items()) if why},
                "reason_choices": list(decisions.REASONS), "pending": waiting, "version": data.version(),
                "pending_count": len(waiting["reject"]) + len(waiting["restore"]), "rebuild": command,
                "smoke_test": view.smoke_test, "reviewed": sorted(seen & view.rows.keys()),
                "reviewable": view.reviewable}

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
        decided = state(view, data.manual(view))
        # Kept once the pending decisions are applied (a restored image counts as kept again).
        change: dict[str, int] = {}
        for job_id in decided["pending"]["reject"]:
            if view.rows[job_id].get("kept") is True:
                change[view.rows[job_id]["concept_id"]] = change.get(view.rows[job_id]["concept_id"], 0) - 1
        for job_id in decided["pending"]["restore"]:
            change[view.rows[job_id]["concept_id"]] = change.get(view.rows[job_id]["concept_id"], 0) + 1
        seen = data.reviewed()
        groups = [{**g, "concepts": [{**c, "kept_after": c["kept"] + change.get(c["id"], 0),
                                      "reviewed": sum(j in seen for j in view.concepts[c["id"]])}
                                     for c in g["concepts"]]} for g in view.overview["groups"]]
        return JSONResponse({**view.overview, "groups": groups, "out_dir": str(out_dir), **decided})

    async def concept(request: Request) -> Response:
        view = data.view()
        concept_id = request.path_params["concept_id"]
        if concept_id not in view.items:
            return JSONResponse({"error": f"unknown concept {concept_id!r}"}, status_code=404)
        partner = view.partner[concept_id]
        summaries = {c["id"]: c for g in view.overview["groups"] for c in g["concepts"]}
        order = [c for members in view.groups for c in members]  # what the next/previous concept keys walk
        position = order.index(concept_id)
        return JSONResponse({
            "concept": summaries[concept_id], "partner": summaries.get(partner), "items": view.items[concept_id],
            "previous": order[position - 1] if position else None,
            "next": order[position + 1] if position + 1 < len(order) else None,
            "partner_kept": view.best_kept.get(partner, []), **state(view, data.manual(view)),
        })

    async def current_state(request: Request) -> Response:
        if request.query_params.get("version") == data.version():  # what a polling page sends: one stat()
            return JSONResponse({"unchanged": True})
        view = data.view()
        return JSONResponse(state(view, data.manual(view)))

    async def decide(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "decisions are JSON requests"}, status_code=415)
        origin = request.headers.get("origin")  # browsers send it with every POST
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            return JSONResponse({"error": f"decisions come from this server's own pages, not {origin}"}, status_code=403)
        body = await read_json_object(request)
        client = str(body.get("client", ""))[:64] or "anonymous"
        view = data.view()
        known = view.rows.keys()
        try:
            # Off the event loop: the list's lock may be held by another writer, and the history fsyncs.
            if request.url.path.endswith("/undo"):
                record = await run_in_threadpool(decisions.undo, out_dir, known, client)
            else:
                reason = body.get("reason")
                record = await run_in_threadpool(decisions.decide, out_dir, known, job_ids_of(body),
                                                 str(body.get("action")), client, None if reason is None else str(reason))
        except UserError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        answer = {"record": record, **state(view, data.manual(view))}
        if record is not None and record["refused"]:
            listed = set(answer["manual"])
            now = ", ".join(f"{j} is {'rejected' if j in listed else 'not rejected'}" for j in record["job_ids"])
            answer["error"] = f"undo refused: {record['refused']} ({now})"
            return JSONResponse(answer, status_code=409)
        return JSONResponse(answer)

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
        Route("/api/state", current_state),
        Route("/api/decide", decide, methods=["POST"]), Route("/api/undo", decide, methods=["POST"]),
        Route("/thumb/{job_id}", thumb), Route("/image/{job_id}", image),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(Deadline, seconds=REQUEST_SECONDS)]
    if is_loopback(host):
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"]))
    if token:
        middleware.append(Middleware(TokenGate, token=token))
    # A build may leave the folder in a state the pages cannot show (an invalid list or manifest):
    # say so in one line instead of a bare 500.
    async def user_error(request: Request, exc: UserError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=409)

    async def refused(request: Request, exc: Refused) -> Response:
        if request.url.path.startswith("/api/"):  # the page reads every API answer as JSON
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return PlainTextResponse(f"{exc.status}: {exc}", status_code=exc.status)

    return Starlette(routes=routes, middleware=middleware, exception_handlers={UserError: user_error, Refused: refused})


def headers_deadline_protocol():
    """uvicorn's h11 protocol, closing a connection that has not sent a whole request's headers
    within ``HEADER_SECONDS`` (uvicorn times out only idle keep-alive connections)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadersDeadline(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._headers_timer = self.loop.call_later(HEADER_SECONDS, self._headers_late)

        def _headers_late(self) -> None:
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():  # no request line + headers yet
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._headers_timer.cancel()
            self._arm()  # the next request on this connection gets its own time

        def connection_lost(self, exc) -> None:
            self._headers_timer.cancel()
            super().connection_lost(exc)

    return HeadersDeadline


def make_server(out_dir: Path, *, host: str = "127.0.0.1", port: int = 8765):
    """A uvicorn server for the review app and the URL to open (with the token when exposed)."""
    import uvicorn

    token = None if is_loopback(host) else secrets.token_urlsafe(24)
    app = create_app(out_dir, host=host, token=token)
    # Bound to every interface: the URL a colleague can open names this machine.
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", http=headers_deadline_protocol())
    return uvicorn.Server(config), url


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
