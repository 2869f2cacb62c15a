"""`moderation backfill`: archives (JSON Lines, CSV) into Redis or over HTTP, resumably."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from rq import Queue
from rq.registry import FinishedJobRegistry
from werkzeug.serving import make_server

from moderation.core.records import Action, Decision, utc_now
from moderation.ops.cli import main
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import SCORING_QUEUE
from tests.support.processes import moderation_env, moderation_process, running_worker, wait_for

SECRET_TEXT = "my private remark about the mayor"


def run_backfill(redis_url: str, *args: str) -> Result:
    env = moderation_env(redis_url)
    return CliRunner().invoke(main, ["backfill", *args], env=env, catch_exceptions=False)


def write_jsonl(path: Path, comments: list[dict]) -> Path:
    path.write_text("".join(json.dumps(comment) + "\n" for comment in comments))
    return path


def read_output(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_state(path: Path) -> int:
    """Records the state file says were submitted (0 while there is none)."""
    try:
        return json.loads(path.read_text())["records"]
    except FileNotFoundError:
        return 0


def decide_all(connection: redis.Redis, site: str, ids: list[str]) -> None:
    """Stand in for a worker: approve each comment."""
    store = CommentStore(connection)
    for comment_id in ids:
        decision = Decision(
            Action.APPROVE, [], {"toxicity": 0.0, "spam": 0.0}, {"toxicity": "t"}, "auto", utc_now()
        )
        store.decide(site, comment_id, decision)


def test_jsonl_is_stored_and_invalid_lines_are_reported(
    redis_server, redis_client, make_site, tmp_path
):
    make_site("news")
    source = tmp_path / "archive.jsonl"
    lines = [
        json.dumps(
            {
                "id": "c-1",
                "content": SECRET_TEXT,
                "author": {"id": "u-1", "name": "Ann"},
                "context": {"post_id": "p-1"},
                "likes": 3,
            }
        ),
        "{not json: " + SECRET_TEXT,
        "",
        json.dumps({"id": 2, "content": "Numeric ids become strings."}),
        json.dumps({"id": "c-3", "content": ""}),
        json.dumps({"id": "c-4", "content": "Fine."}),
    ]
    source.write_text("\n".join(lines) + "\n")

    args = ("--site", "news", "--wait-timeout", "0", "--batch-size", "1")
    result = run_backfill(redis_server.url, str(source), *args)

    assert result.exit_code == 0, result.output
    assert "5 records: 3 accepted, 0 duplicates, 2 invalid, 0 decided, 3 pending" in result.output
    store = CommentStore(redis_client)
    first = store.get("news", "c-1")
    assert first.submission.author == {"id": "u-1", "name": "Ann"}
    assert first.submission.context == {"post_id": "p-1"}
    assert store.get("news", "2") is not None
    assert Queue(SCORING_QUEUE, connection=redis_client).count == 3

    output = tmp_path / "archive.decisions.jsonl"
    entries = read_output(output)
    assert [e["id"] for e in entries if e["status"] == "pending"] == ["c-1", "2", "c-4"]
    invalid = {e["line"]: e for e in entries if e["status"] == "invalid"}
    assert set(invalid) == {2, 5}
    assert invalid[2]["error"]["code"] == "malformed_record"
    assert invalid[5]["id"] == "c-3"
    assert invalid[5]["error"]["fields"].keys() == {"content"}
    assert SECRET_TEXT not in output.read_text()
    assert SECRET_TEXT not in result.output


def test_csv_columns_are_mapped(redis_server, redis_client, make_site, tmp_path):
    make_site("news")
    source = tmp_path / "export.csv"
    source.write_text(
        "comment_id,body,user,user_ip,article,unused\n"
        'a-1,"Two lines,\nof text",u-7,203.0.113.7,p-9,x\n'
        "a-2,Bad address,u-8,not-an-ip,p-9,y\n"
        "\n"
        "a-3,Third,,,,\n"
    )

    result = run_backfill(
        redis_server.url,
        str(source),
        "--site=news",
        "--id-field=comment_id",
        "--content-field=body",
        "--author-id-field=user",
        "--author-ip-field=user_ip",
        "--post-id-field=article",
        "--output",
        str(tmp_path / "out.jsonl"),
        "--wait-timeout=0",
    )

    assert result.exit_code == 0, result.output
    assert "2 accepted, 0 duplicates, 1 invalid" in result.output
    store = CommentStore(redis_client)
    first = store.get("news", "a-1")
    assert first.submission.content == "Two lines,\nof text"
    assert first.submission.author == {"id": "u-7", "ip": "203.0.113.7"}
    assert first.submission.context == {"post_id": "p-9"}
    assert store.get("news", "a-3").submission.author == {}
    invalid = [e for e in read_output(tmp_path / "out.jsonl") if e["status"] == "invalid"]
    assert [(e["line"], e["id"], list(e["error"]["fields"])) for e in invalid] == [
        (4, "a-2", ["author.ip"])
    ]


def test_refuses_without_a_site_or_with_another_runs_state(
    redis_server, redis_client, make_site, tmp_path
):
    make_site("news")
    source = write_jsonl(tmp_path / "a.jsonl", [{"id": "c-1", "content": "Hi"}])
    assert "--site" in run_backfill(redis_server.url, str(source)).output
    assert "no site 'blog'" in run_backfill(redis_server.url, str(source), "--site=blog").output

    args = (str(source), "--site=news", "--wait-timeout=0")
    assert run_backfill(redis_server.url, *args).exit_code == 0
    write_jsonl(source, [{"id": "c-1", "content": "Hi"}, {"id": "c-2", "content": "More"}])
    changed = run_backfill(redis_server.url, *args)
    assert changed.exit_code != 0
    assert "--restart" in changed.output
    again = run_backfill(redis_server.url, *args, "--restart")
    assert "1 accepted, 1 duplicates" in again.output


def test_a_lost_acknowledgement_is_resubmitted_harmlessly(
    redis_server, redis_client, make_site, tmp_path
):
    """The last batch was stored but its acknowledgement never reached the state file."""
    make_site("news")
    ids = [f"c-{n}" for n in range(30)]
    source = write_jsonl(tmp_path / "a.jsonl", [{"id": i, "content": f"Text {i}"} for i in ids])
    output = tmp_path / "a.decisions.jsonl"
    args = (str(source), "--site=news", "--batch-size=10")
    assert run_backfill(redis_server.url, *args, "--wait-timeout=0").exit_code == 0
    state_file = tmp_path / "a.decisions.jsonl.state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "records": 20}))
    decide_all(redis_client, "news", ids)

    result = run_backfill(redis_server.url, *args, "--wait-timeout=5")

    assert result.exit_code == 0, result.output
    assert "30 accepted, 10 duplicates, 0 invalid, 30 decided, 0 pending" in result.output
    entries = read_output(output)
    assert sorted(e["id"] for e in entries) == sorted(ids)
    assert all(e["status"] == "approved" for e in entries)
    store = CommentStore(redis_client)
    assert all([e["action"] for e in store.audit("news", i)] == ["submit", "approve"] for i in ids)


@pytest.mark.e2e
def test_an_interrupted_backfill_resumes_without_duplicates(
    redis_server, redis_client, make_site, tmp_path
):
    """A backfill of a few hundred comments interrupted and resumed with no duplicates."""
    make_site("news")
    ids = [f"c-{n:03d}" for n in range(300)]
    comments = [{"id": i, "content": f"Comment number {i}, on topic."} for i in ids]
    source = write_jsonl(tmp_path / "archive.jsonl", comments)
    output = tmp_path / "archive.decisions.jsonl"
    state_file = tmp_path / "archive.decisions.jsonl.state.json"
    env = moderation_env(redis_server.url)
    args = ["backfill", str(source), "--site", "news"]

    # 20 per batch at 200 comments/s: 1.5 s to submit them all, so the interruption lands midway
    first = [*args, "--wait-timeout", "1", "--batch-size", "20", "--rate", "200"]
    with moderation_process(first, env, tmp_path / "first.log") as process:
        wait_for(lambda: 0 < read_state(state_file) < len(ids), what="some progress")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130, (tmp_path / "first.log").read_text()
    submitted = read_state(state_file)
    assert 0 < submitted < len(ids)
    first_log = (tmp_path / "first.log").read_text()
    assert "interrupted" in first_log
    assert "Comment number" not in first_log

    with (
        running_worker(redis_server.url, tmp_path / "worker.log"),
        moderation_process(
            [*args, "--wait-timeout", "60"], env, tmp_path / "second.log"
        ) as process,
    ):
        assert process.wait(timeout=60) == 0, (tmp_path / "second.log").read_text()
    log = (tmp_path / "second.log").read_text()
    assert f"resuming after {submitted} records" in log
    assert "300 decided, 0 pending" in log

    entries = read_output(output)
    assert sorted(e["id"] for e in entries) == ids
    assert all(e["decision"]["action"] in ("approve", "hold") for e in entries)
    assert len(list(redis_client.scan_iter("mod:comment:news:*"))) == len(ids)
    store = CommentStore(redis_client)
    for comment_id in ids:
        actions = [event["action"] for event in store.audit("news", comment_id)]
        assert actions.count("submit") == 1, comment_id
        assert sum(action in ("approve", "hold") for action in actions) == 1, comment_id
    finished = FinishedJobRegistry(SCORING_QUEUE, connection=redis_client)
    wait_for(lambda: finished.count == len(ids), timeout=10, what="every job to finish")
    assert Queue(SCORING_QUEUE, connection=redis_client).count == 0


@pytest.fixture
def served_api(app) -> Iterator[str]:
    """The real app over HTTP, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.mark.e2e
def test_http_mode_goes_through_the_batch_endpoint(
    redis_server, redis_client, site, served_api, tmp_path
):
    source = tmp_path / "archive.ndjson"
    source.write_text(
        json.dumps({"id": "h-1", "content": "Thanks, a good read."})
        + "\n"
        + json.dumps({"id": "h-2", "content": "x" * 20_001})
        + "\n"
        + json.dumps({"id": "h-3", "content": "I disagree, politely."})
        + "\n"
    )
    with running_worker(redis_server.url, tmp_path / "worker.log"):
        result = run_backfill(
            redis_server.url,
            str(source),
            "--api-url",
            served_api,
            "--api-key",
            site.api_key,
            "--wait-timeout=30",
        )

    assert result.exit_code == 0, result.output
    assert "2 accepted, 0 duplicates, 1 invalid, 2 decided, 0 pending" in result.output
    entries = {e.get("id"): e for e in read_output(tmp_path / "archive.decisions.jsonl")}
    assert entries["h-1"]["status"] == "approved"
    assert entries["h-1"]["decision"]["decided_by"] == "auto"
    assert entries["h-3"]["decision"] is not None
    assert entries["h-2"]["status"] == "invalid"
    assert entries["h-2"]["line"] == 2
    assert CommentStore(redis_client).get("news", "h-1") is not None


#: Lines whose outcome the batch endpoint decides: a callback URL it keeps, a "store": false it
#: refuses (a batch has nobody waiting on the decision), a callback URL it refuses.
ACCEPTED_AS_THE_API_DOES = [
    {"id": "k-1", "content": "Send my decision there.", "callback_url": "https://r.example/hook"},
    {"id": "k-2", "content": SECRET_TEXT, "store": False},
    {"id": "k-3", "content": "A callback that is no URL.", "callback_url": "not a url"},
]


@pytest.mark.parametrize("mode", ["direct", "http"])
def test_each_line_is_accepted_or_refused_as_the_batch_endpoint_does(
    mode, redis_server, redis_client, client, site, auth, request, tmp_path
):
    source = write_jsonl(tmp_path / "archive.jsonl", ACCEPTED_AS_THE_API_DOES)
    if mode == "direct":
        target = ("--site", "news")
    else:
        target = ("--api-url", request.getfixturevalue("served_api"), "--api-key", site.api_key)

    result = run_backfill(redis_server.url, str(source), *target, "--wait-timeout=0")

    assert result.exit_code == 0, result.output
    assert "3 records: 1 accepted, 0 duplicates, 2 invalid" in result.output
    store = CommentStore(redis_client)
    assert store.get("news", "k-1").submission.callback_url == "https://r.example/hook"
    assert store.get("news", "k-2") is None
    assert store.get("news", "k-3") is None
    invalid = {
        e["line"]: e for e in read_output(tmp_path / "archive.decisions.jsonl") if "line" in e
    }
    assert set(invalid) == {2, 3}
    # The API answers the same lines (under other ids) with the same errors.
    same_lines = [{**c, "id": "api-" + c["id"]} for c in ACCEPTED_AS_THE_API_DOES]
    answer = client.post("/v1/comments/batch", json={"comments": same_lines}, headers=auth)
    api_results = answer.get_json()["results"]
    assert [r["status"] for r in api_results] == ["accepted", "invalid", "invalid"]
    assert invalid[2]["error"] == api_results[1]["error"]
    assert invalid[2]["error"]["fields"].keys() == {"store"}
    assert invalid[3]["error"] == api_results[2]["error"]
    assert invalid[3]["error"]["fields"].keys() == {"callback_url"}
    assert SECRET_TEXT not in (tmp_path / "archive.decisions.jsonl").read_text()
