"""A real MariaDB server for a test: its own data directory, socket and free loopback port.

with MariaDB(tmp_path / "mariadb") as database:
    database.create_database("wordpress", "wordpress", "secret")
    database.query("SELECT 1")  # [['1']]
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from tests.support.processes import wait_for
from tests.support.redis_server import free_port

INSTALL_HINT = "apt-get install -y mariadb-server"


def mariadb_binary(name: str) -> str:
    """A MariaDB program's path (Debian puts the server in /usr/sbin, often not on PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError(f"{name} is not installed ({INSTALL_HINT})")
    return found


class MariaDB:
    """Owns one `mariadbd` process on 127.0.0.1:`port`; root has no password on its socket."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.socket = directory / "mariadb.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, deadline: float = 30.0) -> None:
        """Create the data directory and start the server; returns once it answers."""
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        user = getpass.getuser()  # mariadbd runs as root only when told so
        install = [
            mariadb_binary("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={data}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        done = subprocess.run(install, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{done.stdout}\n{done.stderr}")
        server = [
            mariadb_binary("mariadbd"),
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-networking=0",
            "--skip-name-resolve",
            f"--user={user}",
            f"--pid-file={self.directory / 'mariadb.pid'}",
            f"--log-error={self.directory / 'error.log'}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
        ]
        self.process = subprocess.Popen(server, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_for(self._answers, timeout=deadline, interval=0.05, what="mariadbd to answer")
        except (AssertionError, RuntimeError) as error:
            log = (self.directory / "error.log").read_text(errors="replace")[-3000:]
            self.stop()
            raise RuntimeError(f"mariadbd on port {self.port} did not start:\n{log}") from error

    def _answers(self) -> bool:
        """True once the server answers a query; RuntimeError if it exited."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"mariadbd exited with {self.process.returncode}")
        return self._queries()

    def _queries(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self.query("SELECT 1") == [["1"]]
        except RuntimeError:
            return False

    def query(self, sql: str, database: str | None = None) -> list[list[str]]:
        """Run SQL as root over the socket; the rows as lists of strings (NULL as 'NULL')."""
        command = [
            mariadb_binary("mariadb"),
            "--no-defaults",
            f"--socket={self.socket}",
            "--user=root",
            "--batch",
            "--raw",
            "--skip-column-names",
            f"--execute={sql}",
        ]
        if database:
            command.append(database)
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb query failed: {done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines()]

    def create_database(self, name: str, user: str, password: str) -> None:
        """An empty database and a user who may do anything in it, from 127.0.0.1."""
        self.query(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
            f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';"
            f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'127.0.0.1';"
        )

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it takes too long."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> MariaDB:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
