"""Headless Chromium for tests: the flags this offline machine needs and a small DevTools client."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

# Network is closed in tests; these flags stop Chromium's own background connections.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class DevToolsPipe:
    """Minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fds 3 and 4).

    Used for the screenshot: ``chromium --screenshot`` with a virtual-time budget captures at a
    moment of its own choosing, and NVL's canvas was sometimes not in that frame yet (a blank graph
    under load). Over the protocol we wait until the page says it has rendered, then capture.
    """

    def __init__(self, window: tuple[int, int], timeout_s: float = 90.0) -> None:
        assert CHROMIUM
        self.deadline = time.monotonic() + timeout_s
        self.profile = tempfile.TemporaryDirectory(prefix="qkgraph-chromium-")
        to_chrome_r, self._to_chrome_w = os.pipe()
        self._from_chrome_r, from_chrome_w = os.pipe()

        def wire_fds() -> None:
            # Chromium reads commands on fd 3 and writes replies on fd 4; dup first so the new
            # descriptors are inheritable even if a pipe end already sits on 3 or 4.
            read_end, write_end = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile.name}",
                "--remote-debugging-pipe",
                f"--window-size={window[0]},{window[1]}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=wire_fds,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its reply (events in between are ignored)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome_w, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                left = self.deadline - time.monotonic()
                ready, _, _ = select.select([self._from_chrome_r], [], [], max(left, 0))
                if not ready:
                    raise TimeoutError(f"no DevTools reply to {method}")
                chunk = os.read(self._from_chrome_r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome_w)
        os.close(self._from_chrome_r)
        self.profile.cleanup()
