"""Lost jobs: the sweeper, the final-failure hold, and a worker killed with SIGKILL mid-job."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from rq import Queue
from rq.registry import StartedJobRegistry

from moderation.app import create_app
from moderation.core.redis_keys import KEYS
from moderation.ops.cli import main
from moderation.storage.comment_store import CommentStore
from moderation.storage.job_queues import SCORING_QUEUE, ScoringEnqueuer, language_queue_name
from tests.support.load import automatic_decisions
from tests.support.processes import moderation_env, running_worker, wait_for
from workers.scoring.sweeper import Liveness, is_alive, needs_new_job, sweep


def submit(client, auth, comment_id: str, content: str = "Hello there") -> None:
    body = {"id": comment_id, "content": content}
    assert client.post("/v1/comments", json=body, headers=auth).status_code == 202


# --- the sweeper's judgement, job state by job state ----------------------------------------


def test_a_waiting_job_is_left_alone_and_a_missing_one_replaced(
    client, auth, settings, redis_client
):
    submit(client, auth, "c-1")
    store = CommentStore(redis_client)
    job_id = store.job_id("news", "c-1")
    assert not needs_new_job(redis_client, job_id)  # queued: its turn will come
    assert sweep(redis_client, store, ScoringEnqueuer(redis_client, settings), 0).requeued == 0

    redis_client.delete(f"rq:job:{job_id}")  # the job vanished
    assert needs_new_job(redis_client, job_id)
    report = sweep(redis_client, store, ScoringEnqueuer(redis_client, settings), 0)
    assert report.requeued == 1
    assert store.job_id("news", "c-1") != job_id


def test_a_job_handed_to_a_language_nobody_reads_any_more_goes_back_to_the_shared_queue(
    client, auth, settings, redis_client
):
    submit(client, auth, "c-fr", "Merci pour cet article, je suis tout à fait d'accord.")
    store = CommentStore(redis_client)
    enqueue = ScoringEnqueuer(redis_client, settings)
    handed = store.requeue("news", "c-fr", enqueue.to_language("fr"))  # as a worker hands over
    french = Queue(language_queue_name("fr"), connection=redis_client)
    assert french.job_ids == [handed]

    def reads_french() -> frozenset[str]:
        return frozenset({"en", "fr"})

    assert not needs_new_job(redis_client, handed, reads_french)
    assert sweep(redis_client, store, enqueue, 0, covered=reads_french).requeued == 0

    assert needs_new_job(redis_client, handed)  # no live worker reads French
    assert sweep(redis_client, store, enqueue, 0).requeued == 1
    new_job = store.job_id("news", "c-fr")
    assert new_job in Queue(SCORING_QUEUE, connection=redis_client).job_ids
    assert french.job_ids == []  # the stale copy is gone


def test_a_started_job_counts_as_lost_once_its_worker_is_not_alive(
    client, auth, settings, redis_client
):
    submit(client, auth, "c-1")
    store = CommentStore(redis_client)
    job = Queue(SCORING_QUEUE, connection=redis_client).fetch_job(store.job_id("news", "c-1"))
    job.set_status("started")
    job.worker_name = "scoring.gone"
    job.save()
    liveness = Liveness(redis_client, "scoring.gone")
    liveness.start()
    try:
        assert is_alive(redis_client, "scoring.gone")
        assert not needs_new_job(redis_client, job.id)
    finally:
        liveness.stop()
    assert not is_alive(redis_client, "scoring.gone")
    assert needs_new_job(redis_client, job.id)


def test_a_started_job_of_a_live_worker_counts_as_lost_once_no_run_could_take_that_long(
    client, auth, settings, redis_client
):
    """Redis lost the writes that finished a job (a power cut under everysec, a failover to a
    lagging replica): it stays "started" by a worker that lives on but no longer holds it."""
    submit(client, auth, "c-1")
    store = CommentStore(redis_client)
    job = Queue(SCORING_QUEUE, connection=redis_client).fetch_job(store.job_id("news", "c-1"))
    with redis_client.pipeline() as pipe:
        job.prepare_for_execution("scoring.busy", pipe)  # as the worker marks its batch
        pipe.execute()
    liveness = Liveness(redis_client, "scoring.busy")
    liveness.start()
    try:
        assert not needs_new_job(redis_client, job.id)  # just started: it is being run
        long_ago = datetime.now(UTC) - timedelta(seconds=2 * job.timeout + 1)
        redis_client.hset(job.key, "started_at", long_ago.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        assert needs_new_job(redis_client, job.id)
        assert sweep(redis_client, store, ScoringEnqueuer(redis_client, settings), 0).requeued == 1
    finally:
        liveness.stop()


def test_only_pending_comments_past_the_deadline_are_swept(client, auth, settings, redis_client):
    submit(client, auth, "c-1")
    store = CommentStore(redis_client)
    redis_client.delete(f"rq:job:{store.job_id('news', 'c-1')}")
    enqueue = ScoringEnqueuer(redis_client, settings)
    assert sweep(redis_client, store, enqueue, older_than=3600).checked == 0
    redis_client.set(KEYS.sweep_lock, "1")  # another worker is sweeping
    assert sweep(redis_client, store, enqueue, older_than=0).requeued == 0
    redis_client.delete(KEYS.sweep_lock)
    assert sweep(redis_client, store, enqueue, older_than=0).requeued == 1


# --- real worker processes ------------------------------------------------------------------


@pytest.mark.e2e
def test_a_comment_whose_scoring_keeps_failing_is_held(
    auth, settings, redis_server, redis_client, tmp_path
):
    client = create_app(settings.with_overrides(job_retries=1)).test_client()
    submit(client, auth, "poison")
    # a corrupt site policy makes every scoring attempt raise
    redis_client.set(KEYS.policy("news"), "{not json")
    with running_worker(redis_server.url, tmp_path / "worker.log"):
        record = wait_for(
            lambda: (
                (r := client.get("/v1/comments/poison?wait=5", headers=auth).get_json())
                and r["decision"]
                and r
            ),
            timeout=120,
            what="the final failure to hold the comment",
        )
        assert record["status"] == "held"
        assert record["decision"]["reasons"] == ["scoring failed"]
        # Nothing was computed, so nothing is made up: no scores, never zeros.
        assert record["decision"]["scores"] is None

        env = moderation_env(redis_server.url)
        report = json.loads(CliRunner().invoke(main, ["status", "--json"], env=env).stdout)
        assert report["queues"]["scoring"]["failed"] == 1
        assert report["queues"]["scoring"]["workers"]

        # the operator mends the cause, then gives the failed comment another go
        redis_client.delete(KEYS.policy("news"))
        result = CliRunner().invoke(main, ["requeue"], env=env)
        assert "requeued 1 failed scoring jobs" in result.output
        again = wait_for(
            lambda: (
                (r := client.get("/v1/comments/poison?wait=5", headers=auth).get_json())
                and r["status"] == "approved"
                and r
            ),
            timeout=60,
            what="the requeued comment to be scored",
        )
    assert again["decision"]["decided_by"] == "auto"
    actions = [event["action"] for event in CommentStore(redis_client).audit("news", "poison")]
    assert actions == ["submit", "hold", "requeue", "approve"]


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_sigkill_mid_job_loses_nothing_and_decides_each_comment_once(
    client, auth, redis_server, redis_client, tiny_detoxify, tmp_path
):
    """Kill a worker with SIGKILL while it holds a comment; a second worker's sweeper gives
    that comment a new job, and every comment ends with exactly one automatic decision."""
    slow = {
        # The tiny Detoxify model on long comments keeps each job busy for a while.
        "MODERATION_TOXICITY_MODEL": f"detoxify:{tiny_detoxify.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(tiny_detoxify.config_dir),
        "MODERATION_MAX_TOKENS": "512",
        "MODERATION_SWEEP_AFTER": "2",
    }
    count = 60
    for number in range(count):
        submit(client, auth, f"c-{number}", "you are a stupid idiot " * 800)
    started = StartedJobRegistry(SCORING_QUEUE, connection=redis_client)

    abandoned: list[str] = []
    for _attempt in range(5):
        with running_worker(redis_server.url, tmp_path / "victim.log", slow) as victim:
            wait_for(lambda: started.get_job_ids(), timeout=60, interval=0.005, what="a job")
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            abandoned = started.get_job_ids()
        if abandoned:
            break
    assert abandoned, "never caught the worker in the middle of a job"

    with running_worker(redis_server.url, tmp_path / "rescuer.log", slow):

        def all_decided() -> bool:
            return CommentStore(redis_client).pending_count() == 0

        wait_for(all_decided, timeout=180, interval=0.2, what="every comment to be decided")
        # the abandoned job may still run later (RQ's own clean-up retries it): harmless
    for number in range(count):
        assert automatic_decisions(redis_client, "news", f"c-{number}") == 1, number
    events = [json.loads(e) for e in redis_client.lrange(KEYS.audit("news", "c-0"), 0, -1)]
    assert events[0]["action"] == "submit"


@pytest.mark.e2e
def test_sigterm_finishes_the_comment_in_hand_then_exits(
    client, auth, redis_server, redis_client, tiny_detoxify, tmp_path
):
    slow = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{tiny_detoxify.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(tiny_detoxify.config_dir),
        "MODERATION_MAX_TOKENS": "512",
    }
    for number in range(30):
        submit(client, auth, f"c-{number}", "you are a stupid idiot " * 800)
    started = StartedJobRegistry(SCORING_QUEUE, connection=redis_client)
    queue = Queue(SCORING_QUEUE, connection=redis_client)
    with running_worker(redis_server.url, tmp_path / "worker.log", slow) as worker:
        # The worker takes the whole backlog as one batch, marked started at once.
        in_hand = wait_for(lambda: started.get_job_ids(), timeout=60, interval=0.005)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    assert started.get_job_ids() == []  # nothing left half-done
    jobs = [queue.fetch_job(job_id) for job_id in in_hand]
    finished = [job for job in jobs if job.get_status() == "finished"]
    returned = [job for job in jobs if job.get_status() == "queued"]
    assert finished, "the pass in hand was not finished"
    assert len(finished) + len(returned) == len(jobs)
    for job in finished:
        assert automatic_decisions(redis_client, *job.args) == 1
    # The batch's passes not begun went back to the front of the queue, where the rest waits.
    assert returned and set(queue.get_job_ids()) >= {job.id for job in returned}
    assert queue.count == 30 - len(finished)
    for job in returned:
        assert automatic_decisions(redis_client, *job.args) == 0
