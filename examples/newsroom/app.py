"""A news site whose comment box is moderated by the service: the integration, end to end.

Run it beside the service (`make demo` does all of this for you):

    MODERATION_URL=http://127.0.0.1:8000 MODERATION_API_KEY=mk_... \\
    MODERATION_WEBHOOK_SECRET=... python examples/newsroom/app.py

and give the site the callback URL http://127.0.0.1:8080/hooks/moderation.

The loop: a reader posts a comment; the backend stores it as pending and submits it, waiting up
to two seconds for the decision; approved comments are published at once, held ones are shown
to their poster only, as awaiting moderation. When a moderator decides later, the service POSTs
a signed webhook and the comment is published (or taken down); the article page polls its
thread, so readers see it without a reload.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from comment_table import CommentTable
from flask import Flask, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.serving import make_server

from moderation.client import ModerationClient, ModerationError

log = logging.getLogger("newsroom")

ARTICLE = {
    "slug": "riverside-bridge-reopens",
    "title": "Riverside bridge reopens after two years of repairs",
    "byline": "By Dana Okafor, city desk",
    "paragraphs": [
        "The Riverside bridge reopened to traffic on Monday morning, two years and four months "
        "after inspectors closed it over corroded cables.",
        "The repairs came in under budget, the city's transport office said, and the new cycle "
        "lanes on both sides are the widest in the county.",
        "Shops on Mill Street, which lost most of their passing trade during the closure, "
        'welcomed the news. "We have been waiting for this day," one owner said.',
    ],
}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
WAIT_SECONDS = 2  # how long a reader's "Post Comment" waits for the automatic decision
NOTICES = {
    "approved": "Your comment is published.",
    "held": "Thanks! Your comment is awaiting moderation.",
    "pending": "Thanks! Your comment is awaiting moderation.",
    "rejected": "Your comment was not published.",
}


def create_app(config: dict[str, Any]) -> Flask:
    app = Flask(__name__)
    app.secret_key = config["SECRET_KEY"]
    table = CommentTable(Path(config["DATABASE"]))
    moderation = ModerationClient(config["MODERATION_URL"], config["MODERATION_API_KEY"])
    webhook_secret = config["MODERATION_WEBHOOK_SECRET"]

    def reader_id() -> str:
        """A reader's id for this browser (a real site would use its logged-in user's id)."""
        if "reader" not in session:
            session["reader"] = "reader-" + secrets.token_hex(6)
        return session["reader"]

    def apply_decision(record: dict[str, Any]) -> None:
        decision = record.get("decision")
        if decision is not None:
            table.record_decision(record["id"], record["status"], decision["decided_at"])

    def require_article(slug: str) -> dict[str, Any]:
        if slug != ARTICLE["slug"]:
            abort(404)
        return ARTICLE

    @app.get("/")
    def home():
        return redirect(url_for("article", slug=ARTICLE["slug"]))

    @app.get("/articles/<slug>")
    def article(slug: str):
        comments = table.thread(require_article(slug)["slug"], reader_id())
        return render_template("article.html", article=ARTICLE, thread=comments)

    @app.get("/articles/<slug>/thread")
    def thread(slug: str):
        """The comment list alone: the page polls it to show decisions live."""
        comments = table.thread(require_article(slug)["slug"], reader_id())
        return render_template("_thread.html", thread=comments)

    @app.post("/articles/<slug>/comments")
    def post_comment(slug: str):
        require_article(slug)
        name = request.form.get("name", "").strip()[:80] or "Anonymous"
        content = request.form.get("content", "").strip()
        back = redirect(url_for("article", slug=slug) + "#comments")
        if not content:
            flash("Write something first.", "error")
            return back
        session["name"] = name
        comment_id = f"{slug}-{secrets.token_hex(6)}"
        table.add(comment_id, slug, reader_id(), name, content)  # first, so a webhook finds it
        author = {"id": reader_id(), "name": name}
        if request.remote_addr:
            author["ip"] = request.remote_addr  # the service keeps it for the spam checks only
        permalink = url_for("article", slug=slug, _external=True)
        try:
            record = moderation.submit(
                comment_id,
                content,
                author=author,
                context={"post_id": slug, "permalink": permalink},
                honeypot=request.form.get("website") or None,
                wait=WAIT_SECONDS,
            )
        except ModerationError as error:
            table.forget(comment_id)
            if error.status == 422:  # the service names what it refused, e.g. a too long text
                flash(f"That comment cannot be posted: {error.message}", "error")
            else:
                log.warning("moderation service unavailable: %s", error)
                flash("Comments are unavailable right now; please try again in a minute.", "error")
            return back
        apply_decision(record)
        flash(NOTICES[record["status"]], record["status"])
        return back

    @app.post("/hooks/moderation")
    def moderation_webhook():
        """A decision from the service: verify the signature on the raw body, then apply it.
        Deliveries may be repeated or arrive out of order; applying is idempotent."""
        body = request.get_data()
        if not ModerationClient.verify_webhook(webhook_secret, request.headers, body):
            abort(400)
        event = json.loads(body)
        if event.get("event") == "comment.decided":
            apply_decision(event["comment"])
        return "", 204

    return app


def config_from_environment() -> dict[str, Any]:
    try:
        return {
            "MODERATION_URL": os.environ.get("MODERATION_URL", "http://127.0.0.1:8000"),
            "MODERATION_API_KEY": os.environ["MODERATION_API_KEY"],
            "MODERATION_WEBHOOK_SECRET": os.environ["MODERATION_WEBHOOK_SECRET"],
            "SECRET_KEY": os.environ.get("NEWSROOM_SECRET_KEY") or secrets.token_hex(32),
            "DATABASE": os.environ.get("NEWSROOM_DATABASE", "var/newsroom.sqlite3"),
        }
    except KeyError as missing:
        raise SystemExit(f"newsroom: set {missing.args[0]} (see the top of {__file__})") from None


def main() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    host = os.environ.get("NEWSROOM_HOST", "127.0.0.1")
    port = int(os.environ.get("NEWSROOM_PORT", "8080"))
    server = make_server(host, port, create_app(config_from_environment()), threaded=True)
    log.info("newsroom listening on http://%s:%d", host, server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
