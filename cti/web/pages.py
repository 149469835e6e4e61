"""A feature's own web pages: static HTML and scripts from its package's
``static/`` folder, served with a strict Content-Security-Policy (this
origin only, no inline code) and never cached, like the shell's pages."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from aiohttp import web

__all__ = ["add_feature_pages"]


def _headers(media_blob: bool) -> dict[str, str]:
    media = "media-src 'self' blob:; " if media_blob else ""
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"{media}connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def add_feature_pages(
    app: web.Application,
    *,
    package: str,
    pages: Mapping[str, str],
    scripts: Mapping[str, str],
    media_blob: bool = False,
) -> None:
    """Route each ``pages`` path to an HTML file and each ``scripts`` path to
    a script of *package*'s ``static/``. ``media_blob``: the page plays audio
    it fetched itself (``blob:`` URLs), as the recordings' player does."""
    static = Path(str(resources.files(package).joinpath("static")))
    headers = _headers(media_blob)

    def route(path: str, name: str, content_type: str) -> None:
        async def serve(request: web.Request) -> web.Response:
            body = (static / name).read_text(encoding="utf-8")
            return web.Response(
                text=body, content_type=content_type, charset="utf-8", headers=headers
            )

        app.router.add_get(path, serve)

    for path, name in pages.items():
        route(path, name, "text/html")
    for path, name in scripts.items():
        route(path, name, "application/javascript")
