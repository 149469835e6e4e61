"""Routes of the web pages: ``/desk``, ``/console`` and their static files.

Pages are served with a strict Content-Security-Policy (scripts and styles
from this origin only, no inline code) and never cached, so an engine upgrade
reaches every seat on its next page load.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

__all__ = ["add_web_routes"]

PAGES = {"/desk": "desk.html", "/console": "console.html"}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _static_dir() -> Path:
    return Path(str(resources.files("cti.web").joinpath("static")))


def _page(name: str) -> web.Response:
    body = (_static_dir() / name).read_text(encoding="utf-8")
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=_HEADERS)


def add_web_routes(app: web.Application) -> None:
    for path, name in PAGES.items():

        async def page(request: web.Request, name: str = name) -> web.Response:
            return _page(name)

        app.router.add_get(path, page)

    async def root(request: web.Request) -> web.Response:
        raise web.HTTPFound("/desk")

    app.router.add_get("/", root)

    @web.middleware
    async def static_headers(request: web.Request, handler):  # type: ignore[no-untyped-def]
        response = await handler(request)
        if request.path.startswith("/static/"):
            response.headers.update(_HEADERS)
        return response

    app.middlewares.append(static_headers)
    app.router.add_static("/static/", _static_dir(), follow_symlinks=False)
