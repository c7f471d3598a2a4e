"""Open a report in headless Chromium and report what a reader would see.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (fds 3 and 4, NUL-separated JSON),
so no websocket library is needed. Collects console messages, uncaught exceptions, log entries
and every network request the page makes; evaluates expressions in the page; takes full-page
screenshots at a given viewport width.

Also a script: ``python tests/helpers/browser.py PAGE.html OUT.png [WIDTH] [#fragment]``.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    """What happened while a page loaded."""

    url: str
    console: list[tuple[str, str]] = field(default_factory=list)    # (level, text)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return ([t for lvl, t in self.console if lvl in ("error", "assert")] + self.exceptions + self.log_errors
                + self.failed_requests)


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, timeout: float = 30.0) -> None:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("chromium not found (scripts/setup installs it)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="aprqa-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # in the child: fd 3 = commands in, fd 4 = replies out
            a, b = os.dup(to_child_r), os.dup(from_child_w)  # copies first: either end may sit on 3 or 4
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, pass_fds=(3, 4, to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=True)

    # -- protocol ------------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            e = self._read_message(deadline)
            if e.get("method") == method:
                return e
            self.events.append(e)

    # -- page ------------------------------------------------------------------------------------
    def open(self, path: Path, width: int = 1400, height: int = 900, fragment: str = "") -> PageLoad:
        """Load ``path`` at a ``width`` x ``height`` viewport and collect what happened."""
        self.events.clear()
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": width < 700}, session=True)
        url = Path(path).resolve().as_uri() + fragment
        # via about:blank, so that a page already open (another fragment) loads afresh and fires "load"
        self.call("Page.navigate", {"url": "about:blank"}, session=True)
        self.wait_event("Page.loadEventFired")
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_event("Page.loadEventFired")
        self.evaluate("1")  # drain events queued during load
        load = PageLoad(url)
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled":
                load.console.append((p.get("type", ""), " ".join(str(a.get("value", a.get("description", "")))
                                                                for a in p.get("args", []))))
            elif m == "Runtime.exceptionThrown":
                load.exceptions.append(json.dumps(p.get("exceptionDetails", {}))[:500])
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                load.log_errors.append(p["entry"].get("text", ""))
            elif m == "Network.requestWillBeSent":
                load.requests.append(p.get("request", {}).get("url", ""))
            elif m == "Network.loadingFailed":
                load.failed_requests.append(f"{p.get('errorText')} ({p.get('requestId')})")
        return load

    def evaluate(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page expression failed: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    def screenshot(self, out: Path, width: int = 1400, max_height: int = 6000) -> Path:
        """A PNG of the whole page (up to ``max_height`` px) at the current page's layout."""
        height = min(max_height, int(self.evaluate("document.documentElement.scrollHeight")))
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": width < 700}, session=True)
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        out.write_bytes(base64.b64decode(data))
        return out

    def viewport_shot(self, out: Path, y: int = 0) -> Path:
        """A PNG of the viewport scrolled to ``y``."""
        self.evaluate(f"window.scrollTo(0, {int(y)})")
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


if __name__ == "__main__":
    page, png = Path(sys.argv[1]), Path(sys.argv[2])
    w = int(sys.argv[3]) if len(sys.argv) > 3 else 1400
    frag = sys.argv[4] if len(sys.argv) > 4 else ""
    with Browser() as b:
        loaded = b.open(page, w, fragment=frag)
        b.screenshot(png, w)
    print(f"{png}: errors {loaded.errors or 'none'} · requests {len(loaded.requests)}")


def browser_for_tests() -> Any:
    """A started Browser for a module-scoped fixture (a generator: ``yield from browser_for_tests()``).
    Without chromium the test is skipped, but fails under CI, where scripts/setup installs it."""
    import pytest

    if chromium_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: scripts/setup installs Debian's chromium package")
        pytest.skip("chromium is not installed (scripts/setup installs it where apt is available)")
    with Browser() as b:
        yield b
