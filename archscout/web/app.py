"""The dashboard server: FastAPI routes over one study, read-only, each page with a `.json` twin.

Routes: `/` (overview), `/leaderboard`, `/tree`, `/trends`, `/failures`, `/calibration`, `/arch/{id}`, each also
as `<path>.json` (`/index.json` for the overview), and `/static/*` (our CSS/JS and plotly.min.js
from the installed `plotly` package).

Safety, in one middleware that every request passes:
- GET and HEAD only (HEAD: the same status and headers, no body); anything else is 405, so no
  request can change the study (and the database is opened with SQLite `mode=ro` besides, see
  study.py).
- Without a token (the default, bound to 127.0.0.1) only requests whose Host header names the loop
  back interface are served, as parsed by Starlette's `TrustedHostMiddleware` (400 otherwise, also
  for `localhost:PORT@evil.com` or `[::1]evil.com`): a web page elsewhere cannot read the study
  through DNS rebinding.
- Ids are ASCII digits within SQLite's integers; anything else (`/arch/²`, 30-digit ids) is 404.
- With a token (`--allow-remote`), every request must carry it: `?token=`, the `X-Archscout-Token`
  header or `Authorization: Bearer`, then the cookie set after the first good `?token=`. Compared
  in constant time.
- Every response carries a Content-Security-Policy with `script-src 'self'` (no inline script;
  Plotly needs inline styles, so `style-src` allows them), nosniff, no framing, no referrer.
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from archscout.web.pages import BUILDERS, page_data, render_page
from archscout.web.render import STATIC_DIR, Links, environment, plotly_js
from archscout.web.study import open_readonly

TOKEN_COOKIE = "archscout_token"
TOKEN_HEADER = "x-archscout-token"
LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]"]  # as TrustedHostMiddleware parses the Host header
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id cannot name a row
READ = ["GET", "HEAD"]
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
PATHS = {"/": "index", "/index": "index", "/leaderboard": "leaderboard", "/tree": "tree", "/trends": "trends",
         "/failures": "failures", "/calibration": "calibration"}


def _presented_token(request: Request) -> tuple[str | None, bool]:
    """(token, came in the query string): query, then header, then bearer, then cookie."""
    if "token" in request.query_params:
        return request.query_params["token"], True
    if TOKEN_HEADER in request.headers:
        return request.headers[TOKEN_HEADER], False
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    return request.cookies.get(TOKEN_COOKIE), False


def create_app(study_dir: str | Path, token: str | None = None) -> FastAPI:
    """The dashboard for the study in `study_dir`. `token`: required on every request when given
    (remote use); without it only loopback Host names are served."""
    if token is not None and not token.strip():
        raise ValueError("an empty token would let every request in")
    study = open_readonly(study_dir)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        study.close()

    app = FastAPI(title="archscout dashboard", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.study = study
    server_links = Links()

    @app.middleware("http")
    async def guard(request: Request, call_next):
        refused = _refusal(request, token)
        if refused is not None:
            response: Response = PlainTextResponse(refused[1], status_code=refused[0])
        else:
            response = await call_next(request)
            presented, in_query = _presented_token(request)
            if token is not None and in_query and presented is not None:
                # later page links and the overview's polling carry no token; the cookie does
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers.update(SECURITY_HEADERS)
        if request.method == "HEAD":
            # the GET's status and headers (its length included), no body
            response = Response(status_code=response.status_code, headers=dict(response.headers))
        return response

    if token is None:
        # added last, so it runs first: a foreign Host never reaches the pages
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS)

    def page(name: str, path: str, as_json: bool, arch_id: int | None = None) -> Response:
        data = page_data(study, name, arch_id)
        if data is None:
            return _not_found(f"no architecture #{arch_id} in this study", as_json)
        if as_json:
            return JSONResponse(data)
        live = name == "index"
        return HTMLResponse(render_page(study, name, data, server_links, here=path, live=live))

    @app.api_route("/static/{name}", methods=READ)
    def static(name: str) -> Response:
        if name == "plotly.min.js":
            return FileResponse(plotly_js(), media_type="text/javascript",
                                headers={"Cache-Control": "max-age=86400"})
        path = STATIC_DIR / name
        # only our own files: no path segments, nothing outside static/
        if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
            return _not_found("no such file", False)
        return FileResponse(path)

    @app.api_route("/arch/{ref}", methods=READ)
    def arch(ref: str) -> Response:
        as_json = ref.endswith(".json")
        raw = ref[:-5] if as_json else ref
        # isascii: "²".isdigit() is true, and int() of it fails
        if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_ID:
            return _not_found(f"not an architecture id: {raw}", as_json)
        return page("arch", f"/arch/{raw}", as_json, int(raw))

    @app.api_route("/{ref}", methods=READ)
    @app.api_route("/", methods=READ)
    def named(ref: str = "") -> Response:
        as_json = ref.endswith(".json")
        path = "/" + (ref[:-5] if as_json else ref)
        name = PATHS.get(path)
        if name is None or name not in BUILDERS:
            return _not_found(f"no page {path}", as_json)
        return page(name, "/" if name == "index" else path, as_json)

    return app


def _refusal(request: Request, token: str | None) -> tuple[int, str] | None:
    if request.method not in ("GET", "HEAD"):
        return 405, "read-only dashboard: only GET and HEAD"
    if token is None:
        return None  # the Host header is TrustedHostMiddleware's
    presented, _ = _presented_token(request)
    if presented is None or not hmac.compare_digest(presented.encode(), token.encode()):
        return 401, "token required: open the URL printed by `archscout serve` (…?token=…)"
    return None


def _not_found(message: str, as_json: bool) -> Response:
    if as_json:
        return JSONResponse({"error": message}, status_code=404)
    html = environment().from_string(
        "<!doctype html><title>not found</title><p>{{ m }}</p><p><a href='/'>overview</a></p>"
    ).render(m=message)
    return HTMLResponse(html, status_code=404)
