"""Redis fails over under load: the service follows the Sentinels without a restart.

Real processes: a master and its replica (`appendonly yes`, `appendfsync always`), three
`redis-server --sentinel`, `moderation serve` and two `moderation worker`s, all given only
`REDIS_URL=redis+sentinel://...` and MODERATION_DURABILITY=replica; a client thread submits
comments nonstop while the master is SIGKILLed. The Sentinels promote the replica; the old
master comes back and becomes the new master's replica (`replica` needs one to confirm).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from moderation.core.redis_connections import connect
from tests.support.load import CommentLoad, automatic_decision_counts, outage_under_load
from tests.support.processes import PROJECT_ROOT, moderation_env
from tests.support.sentinel import SentinelSet

pytestmark = pytest.mark.e2e

DURABLE = {"MODERATION_DURABILITY": "replica"}


def test_a_master_killed_mid_load_loses_no_acknowledged_comment(tmp_path):
    with SentinelSet(tmp_path / "redis", appendfsync="always") as redis_set:
        url = redis_set.url
        connection = connect(url)

        def fail_over(load: CommentLoad) -> None:
            old_port = redis_set.master_port()
            redis_set.master.kill()
            redis_set.wait_for_failover(old_port)
            # The old master returns; the Sentinels make it the new master's replica.
            redis_set.master.start()
            # The command line finds the new master through the Sentinels as well.
            status = subprocess.run(
                [sys.executable, "-m", "moderation.ops.cli", "status", "--json"],
                env=moderation_env(url),
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert status.returncode == 0, status.stderr[-2000:]
            assert json.loads(status.stdout)["queues"]["scoring"]["workers"], status.stdout

        answers, killed_at = outage_under_load(url, connection, tmp_path, fail_over, DURABLE)
        assert any(a.status == 503 and a.at > killed_at for a in answers)  # it did fail over
        accepted = [answer.comment_id for answer in answers if answer.status == 202]
        counts = automatic_decision_counts(connection, "news", accepted)
        wrong = {comment_id: n for comment_id, n in counts.items() if n != 1}
        assert not wrong, f"{len(wrong)} of {len(accepted)} not decided exactly once: {wrong}"
        connection.close()
