"""A throwaway Neo4j 5.26 Community server for tests and for users without Docker.

The server is the embedded DBMS started by the small Java launcher whose sources ship inside this
package (``pipeline/store/launcher``, also visible as ``tools/neo4j`` in a checkout). Maven builds it
from Maven Central on first use into a per-user cache folder keyed by the sources' hash, so a wheel
install works as well as a checkout. It listens for Bolt on 127.0.0.1 at a port the caller chooses, keeps its
store in a fresh temporary directory per start unless given a ``home`` (which is then kept and reused),
and has auth disabled unless asked for. With ``browser=True`` it also starts the HTTP connector and
serves Neo4j Browser at ``/browser/``; the Browser jar is resolved by Maven only then (profile
``browser``) and stays off the lean launcher's classpath.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import QkgraphError

#: The launcher's Maven project (pom.xml + src/), package data; QKGRAPH_NEO4J_LAUNCHER overrides it.
LAUNCHER_DIR = Path(os.environ.get("QKGRAPH_NEO4J_LAUNCHER", Path(__file__).resolve().parent / "launcher"))
#: Where Maven builds it; default ``$XDG_CACHE_HOME/qkgraph/neo4j-launcher-<hash of the sources>``.
BUILD_DIR_ENV = "QKGRAPH_NEO4J_BUILD_DIR"
READY_MARKER = "QKGRAPH_NEO4J_READY"
#: Prefix of the launcher's one-line startup error on stderr.
ERROR_PREFIX = "neo4j-dev: "

# Neo4j reaches into JDK internals (direct buffers, unsafe memory access) and on Java 17 needs these
# packages opened to its unnamed module.
JVM_OPENS = [
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
]


#: A server for bulk writes (the bench's, and what docs/neo4j.md recommends for a user's own server
#: on a machine with ~24 GiB): a heap that holds a transaction of 200,000 rows (store.DEFAULT_MAX_ROWS)
#: with room to spare, the throughput collector with a large young generation, objects that survive a
#: young collection (a transaction's state, which lives until the commit) moved to the old generation
#: at once instead of copied between survivor spaces at every collection, and the heap's pages
#: touched at startup (as Neo4j's own neo4j.conf does) rather than faulted in during the first big
#: commit. G1 on the 1 GiB heap spent most of a big commit copying the live transaction state.
BULK_WRITE_HEAP_MB = 6144
BULK_WRITE_PAGECACHE_MB = 1024
BULK_WRITE_JVM_ARGS = ("-XX:+UseParallelGC", "-Xmn2g", "-XX:MaxTenuringThreshold=0", "-XX:+AlwaysPreTouch")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launcher_sources() -> list[Path]:
    return [LAUNCHER_DIR / "pom.xml", *sorted((LAUNCHER_DIR / "src").rglob("*.java"))]


def launcher_build_dir() -> Path:
    """The folder Maven builds the launcher into (classes/ and lib/ inside it)."""
    env = os.environ.get(BUILD_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    digest = hashlib.sha256()
    for path in _launcher_sources():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "qkgraph" / f"neo4j-launcher-{digest.hexdigest()[:12]}"


def _browser_jars(target: Path) -> list[Path]:
    return sorted((target / "browser-lib").glob("*.jar"))


def ensure_launcher_built(quiet: bool = True, browser: bool = False) -> Path:
    """Build the launcher with Maven if its classes or jars are missing; return its build folder.

    With ``browser`` the Maven profile of that name also copies the Neo4j Browser jar into
    ``browser-lib/`` (first use only; the lean build never downloads it).
    """
    target = launcher_build_dir()
    built = (target / "classes" / "qkgraph" / "Neo4jDev.class").exists() and (target / "lib").is_dir()
    if built and (not browser or _browser_jars(target)):
        return target
    if not (LAUNCHER_DIR / "pom.xml").is_file():
        raise QkgraphError(f"the Neo4j launcher sources are missing: no {LAUNCHER_DIR / 'pom.xml'}")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise QkgraphError("Maven (mvn) is needed to build the Neo4j launcher; install it (apt-get install maven)")
    cmd = [mvn, "-B", "-f", str(LAUNCHER_DIR / "pom.xml"), f"-Dqkgraph.build.dir={target}", "package"]
    if browser:
        cmd.append("-Pbrowser")
    proc = subprocess.run(cmd + (["-q"] if quiet else []), capture_output=True, text=True)
    if proc.returncode != 0:
        raise QkgraphError(f"building the Neo4j launcher failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return target


@dataclass
class Neo4jDevServer:
    """An embedded Neo4j started as a child JVM; use as a context manager or call start()/stop().

    Attributes:
        port: Bolt port on 127.0.0.1 (a free one when None).
        home: store directory, kept between runs: a new or empty one becomes our store, one we made
            before is reused (a non-empty directory we did not make is refused); when None a fresh
            temporary one, removed on stop.
        heap_mb: JVM heap (-Xms = -Xmx, so the size is explicit and stable).
        pagecache_mb: Neo4j page cache.
        password: when set, auth is enabled and user ``neo4j`` gets this password (8+ characters).
        browser: also serve Neo4j Browser over HTTP at ``browser_url``.
        http_port: HTTP port on 127.0.0.1; HTTP is off unless this is set or ``browser`` is on
            (then a free port when None).
        settings: more Neo4j settings ``{name: value}`` (``neo4j.conf`` names and syntax, e.g.
            ``{"db.tx_state.memory_allocation": "OFF_HEAP"}``); an unknown name fails the start.
            ``BULK_WRITE_SETTINGS`` are the ones the bench uses (see docs/neo4j.md).
        jvm_args: more JVM options; one that selects a collector (``-XX:+UseParallelGC``) replaces G1.
    """

    port: int | None = None
    home: Path | None = None
    heap_mb: int = 512
    pagecache_mb: int = 64
    password: str | None = None
    browser: bool = False
    http_port: int | None = None
    startup_timeout_s: float = 180.0
    settings: dict[str, str] = field(default_factory=dict)
    jvm_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    startup_seconds: float | None = field(default=None, init=False)
    _own_home: bool = field(default=False, init=False, repr=False)
    _log: list[str] = field(default_factory=list, init=False, repr=False)

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def http_uri(self) -> str | None:
        """The HTTP connector's address, or None when HTTP is off."""
        return None if self.http_port is None else f"http://127.0.0.1:{self.http_port}"

    @property
    def browser_url(self) -> str | None:
        """Where Neo4j Browser is served, or None without ``browser``."""
        return f"{self.http_uri}/browser/" if self.browser and self.http_port is not None else None

    def command(self) -> list[str]:
        """The java command line that starts the launcher (building it first if needed)."""
        target = ensure_launcher_built(browser=self.browser)
        java = shutil.which("java")
        if java is None:
            raise QkgraphError("Java 17 is needed for the Neo4j dev server; install OpenJDK 17")
        classpath = f"{target / 'classes'}{os.pathsep}{target / 'lib' / '*'}"
        if self.browser:
            # Neo4j's Browser module serves the classpath's browser/ folder when this jar is on it.
            classpath += "".join(f"{os.pathsep}{jar}" for jar in _browser_jars(target))
        args = [
            java,
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            # G1 unless jvm_args choose another collector (the JVM refuses two).
            *([] if any(re.fullmatch(r"-XX:\+Use\w+GC", a) for a in self.jvm_args) else ["-XX:+UseG1GC"]),
            *JVM_OPENS,
            *self.jvm_args,
            "-cp",
            classpath,
            "qkgraph.Neo4jDev",
            "--port",
            str(self.port),
            "--home",
            str(self.home),
            "--pagecache",
            str(self.pagecache_mb),
            "--exit-on-stdin-close",
        ]
        for name, value in self.settings.items():
            args += ["--setting", f"{name}={value}"]
        if self.http_port is not None:
            args += ["--http-port", str(self.http_port)]
        if self.password is not None:
            args.append("--auth")
        return args

    def start(self) -> Neo4jDevServer:
        if self.process is not None:
            raise QkgraphError("this Neo4j dev server is already started")
        if self.port is None:
            self.port = free_port()
        if self.browser and self.http_port is None:
            self.http_port = free_port()
        if self.home is None:
            self.home = Path(tempfile.mkdtemp(prefix="qkgraph-neo4j-")) / "home"
            self._own_home = True
        env = dict(os.environ)
        if self.password is not None:
            env["NEO4J_DEV_PASSWORD"] = self.password
        t0 = time.monotonic()
        # stdin stays a pipe: if this Python process dies, the pipe closes and the JVM exits
        # (--exit-on-stdin-close), so no orphaned server outlives a crashed test session.
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        ready = threading.Event()
        announced: list[str] = []

        def pump() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self._log.append(line.rstrip())
                if line.startswith(READY_MARKER):
                    announced.append(line)
                    ready.set()
            ready.set()  # output ended (the process exited): wake the waiter so it can report

        threading.Thread(target=pump, name="neo4j-dev-stdout", daemon=True).start()
        ready.wait(self.startup_timeout_s)
        # Only the ready line means started: the pipe closing also sets the event, possibly before
        # the exit status is reaped, so poll() alone would take a failed start for a good one.
        if not announced or self.process.poll() is not None:
            self.stop()
            raise QkgraphError(self._startup_error())
        self.startup_seconds = time.monotonic() - t0
        return self

    def _startup_error(self) -> str:
        """One line: the launcher's own error when it gave one, else the last log line."""
        errors = [line[len(ERROR_PREFIX) :] for line in self._log if line.startswith(ERROR_PREFIX)]
        if errors:
            return f"Neo4j dev server: {errors[-1]}"
        last = next((line.strip() for line in reversed(self._log) if line.strip()), "no output")
        return f"the Neo4j dev server did not start on port {self.port} ({last}); run it directly to see its log"

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (a clean shutdown of the store), then SIGKILL if it does not exit in time."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        if self._own_home and self.home is not None:
            shutil.rmtree(self.home.parent, ignore_errors=True)

    @property
    def log(self) -> list[str]:
        return list(self._log)

    def __enter__(self) -> Neo4jDevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # `python -m pipeline.store.dev_server --build`: what `make setup` runs
    import sys

    if sys.argv[1:] not in (["--build"], ["--build", "--browser"]):
        sys.exit("usage: python -m pipeline.store.dev_server --build [--browser]")
    print(ensure_launcher_built(quiet=True, browser="--browser" in sys.argv))
