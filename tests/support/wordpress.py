"""A real WordPress site for a test: Debian's unmodified files, its own MariaDB database, PHP's
built-in web server, and this project's must-use plugin pointing the Akismet plugin at a
moderation service.

with wordpress_site(tmp_path, database, service_url="http://127.0.0.1:8000") as site:
    site.php("echo get_option('home');")
    post_comment(site, 1, author="Ann", email="ann@example.org", text="Hi", source_ip="127.0.0.2")
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx

from tests.support.mariadb import MariaDB
from tests.support.processes import PROJECT_ROOT, wait_for
from tests.support.redis_server import free_port

DEBIAN_WORDPRESS = Path("/usr/share/wordpress")
MU_PLUGIN = PROJECT_ROOT / "integrations" / "wordpress" / "moderation-akismet.php"
ADMIN = "admin"
ADMIN_EMAIL = "admin@example.org"
SALTS = ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY")
SALTS += ("AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")


def require_php_and_wordpress() -> str:
    """The php binary; fails (never skips) naming the Debian package that is missing."""
    php = shutil.which("php")
    missing = []
    if php is None:
        missing.append("php-cli php-mysql")
    elif "mysqli" not in subprocess.run([php, "-m"], capture_output=True, text=True).stdout:
        missing.append("php-mysql")
    if not (DEBIAN_WORDPRESS / "wp-settings.php").exists():
        missing.append("wordpress")
    if missing:
        raise RuntimeError(f"the WordPress test needs: apt-get install -y {' '.join(missing)}")
    assert php is not None
    return php


@dataclass(frozen=True)
class WordPressSite:
    """A running site: its URL, document root, admin password and database."""

    url: str
    root: Path
    admin_password: str
    database: MariaDB
    db_name: str
    php_binary: str

    def php(self, code: str, *, installing: bool = False, timeout: float = 60) -> str:
        """Run PHP code with WordPress loaded (as WP-CLI would); its standard output."""
        script = self.root.parent / f"run-{secrets.token_hex(4)}.php"
        prelude = "define('WP_INSTALLING', true);\n" if installing else ""
        load = f"require {str(self.root / 'wp-load.php')!r};"
        script.write_text(f"<?php\n{prelude}{load}\n{code}\n")
        try:
            done = subprocess.run(
                [self.php_binary, str(script)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        finally:
            script.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"php failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def query(self, sql: str) -> list[list[str]]:
        """SQL against the site's database (tables are prefixed wp_)."""
        return self.database.query(sql, self.db_name)

    @property
    def debug_log(self) -> str:
        """WordPress's debug log (PHP notices, warnings, fatal errors), '' when empty."""
        path = self.root / "wp-content" / "debug.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wp_config(*, port: int, db_port: int, db_name: str, password: str, service_url: str) -> str:
    """A wp-config.php for the site (Debian's own reads /etc/wordpress, which tests never write)."""
    salts = "\n".join(f"define('{name}', '{secrets.token_hex(32)}');" for name in SALTS)
    return f"""<?php
define('DB_NAME', '{db_name}');
define('DB_USER', '{db_name}');
define('DB_PASSWORD', '{password}');
define('DB_HOST', '127.0.0.1:{db_port}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}
$table_prefix = 'wp_';
define('WP_HOME', 'http://127.0.0.1:{port}');
define('WP_SITEURL', 'http://127.0.0.1:{port}');
// The must-use plugin under test.
define('MODERATION_AKISMET_URL', '{service_url}');
// No internet on a test machine: WordPress's calls home would each wait for a timeout. The
// service runs on 127.0.0.1 like the site, which WordPress always lets through.
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_DEBUG', true);
define('WP_DEBUG_DISPLAY', false);
define('WP_DEBUG_LOG', true);
if (!defined('ABSPATH')) {{
    define('ABSPATH', __DIR__ . '/');
}}
require_once ABSPATH . 'wp-settings.php';
"""


INSTALL = """
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
$installed = wp_install('Moderation test blog', '{admin}', '{email}', true, '', '{password}');
if (is_wp_error($installed)) {{ fwrite(STDERR, $installed->get_error_message()); exit(1); }}
$activated = activate_plugin('akismet/akismet.php');
if (is_wp_error($activated)) {{ fwrite(STDERR, $activated->get_error_message()); exit(1); }}
echo 'installed';
"""


@contextmanager
def wordpress_site(directory: Path, database: MariaDB, service_url: str) -> Iterator[WordPressSite]:
    """Copy Debian's WordPress, configure and install it, and serve it with `php -S`."""
    php = require_php_and_wordpress()
    root = directory / "wordpress"
    shutil.copytree(DEBIAN_WORDPRESS, root, symlinks=True)
    (root / "wp-content" / "mu-plugins").mkdir()
    shutil.copy(MU_PLUGIN, root / "wp-content" / "mu-plugins" / MU_PLUGIN.name)

    port, db_name, db_password = free_port(), "wordpress", secrets.token_hex(12)
    database.create_database(db_name, db_name, db_password)
    (root / "wp-config.php").write_text(
        wp_config(
            port=port,
            db_port=database.port,
            db_name=db_name,
            password=db_password,
            service_url=service_url,
        )
    )
    site = WordPressSite(
        url=f"http://127.0.0.1:{port}",
        root=root,
        admin_password=secrets.token_urlsafe(16),
        database=database,
        db_name=db_name,
        php_binary=php,
    )
    script = INSTALL.format(admin=ADMIN, email=ADMIN_EMAIL, password=site.admin_password)
    assert site.php(script, installing=True).endswith("installed")

    with serving(php, root, port, directory / "php-server.log"):
        yield site


@contextmanager
def serving(php: str, root: Path, port: int, log_path: Path) -> Iterator[None]:
    """PHP's built-in web server for `root` on 127.0.0.1:`port`, with a few workers so the
    browser's parallel requests do not queue behind one another."""
    env = {**os.environ, "PHP_CLI_SERVER_WORKERS": "4"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [php, "-S", f"127.0.0.1:{port}", "-t", str(root)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers share its process group, stopped together
        )
        try:

            def answers() -> bool:
                assert process.poll() is None, f"php -S exited:\n{log_path.read_text()}"
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/wp-login.php", timeout=5)
                except httpx.TransportError:
                    return False
                return response.status_code == 200

            wait_for(answers, timeout=30, interval=0.05, what="php -S to serve WordPress")
            yield
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


class HiddenInputs(HTMLParser):
    """The hidden inputs of the form with id `commentform` (the post's comment form)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_form = False
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.in_form = attributes.get("id") == "commentform"
        elif tag == "input" and self.in_form and attributes.get("type") == "hidden":
            self.fields[attributes.get("name", "")] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.in_form = False


def post_comment(
    site: WordPressSite, post_id: int, *, author: str, email: str, text: str, source_ip: str
) -> httpx.Response:
    """A logged-out visitor from `source_ip` (any 127.x address) opens the post and sends its
    comment form to wp-comments-post.php; WordPress's answer (302 when it took the comment).

    Each visitor has an address of its own as on a real site: WordPress refuses a second comment
    from one address within 15 s as a flood."""
    transport = httpx.HTTPTransport(local_address=source_ip)
    user_agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
    headers = {"User-Agent": user_agent}
    with httpx.Client(transport=transport, headers=headers, timeout=60) as visitor:
        page = visitor.get(f"{site.url}/?p={post_id}")
        page.raise_for_status()
        form = HiddenInputs()
        form.feed(page.text)
        assert form.fields.get("comment_post_ID") == str(post_id), "no comment form on the post"
        fields = {**form.fields, "author": author, "email": email, "url": "", "comment": text}
        return visitor.post(
            f"{site.url}/wp-comments-post.php",
            data=fields,
            headers={"Referer": str(page.url)},
        )
