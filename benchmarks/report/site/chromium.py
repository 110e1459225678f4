"""Headless Chromium through the DevTools protocol over a pipe: open a page of the site, read what
its console said and what it requested, evaluate script in it, take a screenshot.

Standard library only: Chromium's ``--remote-debugging-pipe`` reads commands from file descriptor 3
and writes replies and events to 4, each a JSON message ending in a NUL byte (no websocket, no
port, no driver to download). The browser starts with a fresh profile and home folder in a
temporary folder and every background service off, and resolves no host name, so a page can
reach nothing but files.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)


class ChromiumError(RuntimeError):
    """Chromium could not start, did not answer in time, or refused a command."""


def find_chromium() -> str | None:
    """The Chromium to drive: ``$CHROMIUM`` if set, else the first of :data:`CANDIDATES` on the PATH."""
    return os.environ.get("CHROMIUM") or next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class Page:
    """One tab: what its console reported as errors and every URL it requested, since it was opened."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser, self.session = browser, session
        self.errors: list[str] = []
        self.requests: list[str] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session)

    def note(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"{entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (a promise is awaited); a thrown error raises :class:`ChromiumError`."""
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise ChromiumError(f"{expression[:80]!r} threw: {reply['exceptionDetails'].get('exception', {}).get('description')}")
        return reply["result"].get("value")

    def screenshot(self, path: str | os.PathLike) -> Path:
        """The viewport as a PNG at ``path``, once every image of the page has loaded."""
        self.evaluate("Promise.all(Array.from(document.images, (image) => { image.loading = 'eager'; return image.decode().catch(() => null); }))")
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


class Chromium:
    """A headless Chromium for the length of a ``with`` block: ``with Chromium() as browser: page = browser.open(url)``."""

    def __init__(self, executable: str | None = None, timeout: float = 60.0) -> None:
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise ChromiumError(
                f"No Chromium found (looked for {', '.join(CANDIDATES)} on the PATH and $CHROMIUM): "
                "install it (Debian: apt-get install chromium) or set CHROMIUM to its path."
            )
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self._pages: dict[str, Page] = {}

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        self._log = open(Path(self._profile.name) / "chromium.log", "wb")  # noqa: SIM115 -- closed in __exit__
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def descriptors() -> None:  # in the child: the pipe ends at 3 (commands) and 4 (replies)
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        profile = self._profile.name
        command = [self.executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        # Chromium keeps crash reports and settings under the home folder whatever the profile: a temporary one
        home = {"HOME": profile, "XDG_CONFIG_HOME": f"{profile}/config", "XDG_CACHE_HOME": f"{profile}/cache"}
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env={**os.environ, **home}, preexec_fn=descriptors, pass_fds=(3, 4)
        )
        os.close(to_child)
        os.close(from_child)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call("Browser.close")
        except (ChromiumError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for descriptor in (self._read, self._write):
            os.close(descriptor)
        self._log.close()
        self._profile.cleanup()

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise ChromiumError(f"Chromium did not answer within {self.timeout:.0f} s.")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise ChromiumError(f"Chromium exited (code {self._process.poll()}); its log: {Path(self._profile.name) / 'chromium.log'}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        event = json.loads(message)
        if "sessionId" in event and event["sessionId"] in self._pages:
            self._pages[event["sessionId"]].note(event)
        return event

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its reply (events that arrive meanwhile go to their page)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def wait_for(self, page: Page, event: str) -> None:
        """Read messages until ``page`` reports ``event`` (a method name such as ``Page.loadEventFired``)."""
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("method") == event and message.get("sessionId") == page.session:
                return

    def open(self, url: str, width: int = 1400, height: int = 900) -> Page:
        """A new tab of ``width`` x ``height`` pixels showing ``url``, once its load event fired."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = self._pages[session] = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=url)
        self.wait_for(page, "Page.loadEventFired")
        return page


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.report.site.chromium <page>[#fragment] <png>``: a screenshot of a page of
    the site in headless Chromium; exit status 1 when its console reported errors (they are printed)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report.site.chromium", description="A screenshot of a page of the results browser in headless Chromium."
    )
    parser.add_argument("page", help="a page of the site, e.g. report/site/items-toy-toy_shapes.html#sort=instdiffedit:mask_iou")
    parser.add_argument("png", help="where the screenshot goes")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    path, _, fragment = args.page.partition("#")
    if not Path(path).is_file():
        parser.error(f"{path} is no file: pass a page the report wrote with --html.")
    try:
        with Chromium() as browser:
            page = browser.open(Path(path).resolve().as_uri() + (f"#{fragment}" if fragment else ""), args.width, args.height)
            page.screenshot(args.png)
    except ChromiumError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for message in page.errors:
        print(f"console error: {message}", file=sys.stderr)
    print(args.png)
    return 1 if page.errors else 0


if __name__ == "__main__":
    sys.exit(main())
