"""A small Chrome DevTools Protocol client over aiohttp, for the browser
tests: Debian's headless Chromium, driven like a user (real mouse events at
the element's position, typed text), waiting on the page's own DOM changes.

Playwright would do the same through its Node driver; this keeps the test on
the engine's own asyncio loop and needs no download beyond Debian's chromium.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1366,900",
    "--lang=zh-CN",
    "--remote-debugging-port=0",
]


class BrowserError(RuntimeError):
    pass


class Browser:
    """``async with Browser() as browser: page = await browser.new_page()``."""

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or shutil.which("chromium") or "/usr/bin/chromium"
        if not Path(self.executable).exists():
            raise BrowserError(
                "chromium is not installed; run scripts/setup-system.sh (Debian package chromium)"
            )
        self.profile = Path(tempfile.mkdtemp(prefix="hotline-chromium-"))
        self._proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._listeners: dict[str, list[asyncio.Queue[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._drainer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Browser:
        self._proc = await asyncio.create_subprocess_exec(
            self.executable,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={self.profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        url = await self._devtools_url()
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(url, max_msg_size=64 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _devtools_url(self) -> str:
        """Chromium prints "DevTools listening on ws://..." on stderr at start."""
        assert self._proc is not None and self._proc.stderr is not None
        async with asyncio.timeout(30):
            while True:
                line = await self._proc.stderr.readline()
                if not line:
                    raise BrowserError("chromium exited before its DevTools endpoint was up")
                text = line.decode(errors="replace").strip()
                if text.startswith("DevTools listening on "):
                    # Keep draining stderr so that chromium never blocks on it.
                    self._drainer = asyncio.get_running_loop().create_task(self._drain())
                    return text.removeprefix("DevTools listening on ")

    async def _drain(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while await self._proc.stderr.readline():
            pass

    async def __aexit__(self, *exc: object) -> None:
        for task in (self._reader, self._drainer):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                async with asyncio.timeout(5):
                    await self._proc.wait()
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    if "error" in data:
                        future.set_exception(BrowserError(str(data["error"])))
                    else:
                        future.set_result(data.get("result", {}))
            else:
                key = f"{data.get('sessionId', '')}:{data.get('method')}"
                for queue in self._listeners.get(key, []):
                    queue.put_nowait(data.get("params", {}))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        assert self._ws is not None
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self._ws.send_str(json.dumps(message))
        async with asyncio.timeout(30):
            return await future

    def listen(self, session: str, method: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._listeners.setdefault(f"{session}:{method}", []).append(queue)
        return queue

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.console_errors: list[str] = []
        self._exceptions = browser.listen(session, "Runtime.exceptionThrown")

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session)

    async def goto(self, url: str) -> None:
        loaded = self.browser.listen(self.session, "Page.loadEventFired")
        await self.send("Page.navigate", {"url": url})
        async with asyncio.timeout(20):
            await loaded.get()

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, condition: str, *, timeout_s: float = 20.0) -> Any:
        """Until the JavaScript *condition* is truthy: checked now and on every
        DOM change (a MutationObserver in the page), so no polling."""
        script = f"""new Promise((resolve) => {{
            const check = () => {{
                let value;
                try {{ value = ({condition}); }} catch (e) {{ value = undefined; }}
                if (value) {{ observer.disconnect(); resolve(value); return true; }}
                return false;
            }};
            const observer = new MutationObserver(check);
            if (!check()) observer.observe(document, {{subtree: true, childList: true,
                attributes: true, characterData: true}});
        }})"""
        try:
            async with asyncio.timeout(timeout_s):
                return await self.evaluate(script)
        except TimeoutError:
            text = await self.evaluate("document.body ? document.body.innerText : ''")
            raise BrowserError(f"timed out waiting for {condition!r}; page:\n{text}") from None

    async def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element (it must be enabled)."""
        box = await self.wait_for(
            f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
                if (!el || el.disabled || el.offsetParent === null) return null;
                el.scrollIntoView({{block: 'center'}});
                const r = el.getBoundingClientRect();
                return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()"""
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    async def type(self, selector: str, text: str) -> None:
        await self.click(selector)
        await self.evaluate(
            f"document.querySelector({json.dumps(selector)}).select && "
            f"document.querySelector({json.dumps(selector)}).select()"
        )
        await self.send("Input.insertText", {"text": text})

    async def select(self, selector: str, value: str) -> None:
        await self.evaluate(
            f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
                el.value = {json.dumps(value)};
                el.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"""
        )

    async def text(self, selector: str) -> str:
        return str(
            await self.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")
        )

    async def screenshot(self, path: Path) -> Path:
        shot = await self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def exceptions(self) -> list[dict[str, Any]]:
        """Uncaught JavaScript exceptions seen so far on the page."""
        found = []
        while not self._exceptions.empty():
            found.append(self._exceptions.get_nowait())
        return found
