"""The sites' models in Redis: versions put in use, the log, rollback, old files let go; the
report behind GET /v1/models; and `moderation models` on the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from moderation.ops.cli import main
from moderation.storage.model_registry import KEEP_VERSIONS, ModelRegistry, UnknownVersionError
from tests.support.processes import moderation_env


def promote(registry: ModelRegistry, site: str = "news", kind: str = "spam") -> int:
    version = registry.next_version(site, kind)
    entry = {"version": version, "name": f"spam-base-1+{site}.v{version}", "promoted": True}
    entry |= {"reason": "better", "labels": {"spam": 10, "ok": 10}, "held_out": {"auc": 0.99}}
    registry.record(site, kind, entry, b"model %d" % version, b"twin %d" % version)
    return version


def test_a_promoted_version_is_in_use_with_its_twin_and_logged(redis_client) -> None:
    registry = ModelRegistry(redis_client)
    assert registry.active("news") == {}
    version = promote(registry)
    assert registry.active_many(["news", "blog"]) == {"news": {"spam": 1}, "blog": {}}
    assert registry.model_file("news", "spam", version) == b"model 1"
    assert registry.twin_file("news", "spam", version) == b"twin 1"
    rejected = {"version": registry.next_version("news", "spam"), "promoted": False}
    registry.record("news", "spam", {**rejected, "name": "x", "reason": "worse"}, b"m", b"t")
    assert registry.active("news") == {"spam": 1}  # a version not promoted is only logged
    assert registry.model_file("news", "spam", 2) is None
    assert [e["version"] for e in registry.log("news", "spam")] == [2, 1]
    assert registry.entry("news", "spam", 1)["reason"] == "better"


def test_rollback_goes_to_the_previous_promoted_version_then_the_base(redis_client) -> None:
    registry = ModelRegistry(redis_client)
    for _ in range(3):
        promote(registry)
    assert registry.rollback("news", "spam", actor="operator") == 2
    assert registry.rollback("news", "spam") == 1
    assert registry.rollback("news", "spam") == 0
    assert registry.active("news") == {}
    assert registry.rollback("news", "spam", to=3) == 3
    with pytest.raises(UnknownVersionError):
        registry.rollback("news", "spam", to=9)
    rollback = registry.log("news", "spam")[0]
    assert (rollback["event"], rollback["from"], rollback["to"]) == ("rollback", 0, 3)


def test_only_the_newest_promoted_files_are_kept(redis_client) -> None:
    registry = ModelRegistry(redis_client)
    versions = [promote(registry) for _ in range(KEEP_VERSIONS + 2)]
    kept = [v for v in versions if registry.model_file("news", "spam", v)]
    assert kept == versions[2:]
    assert registry.twin_file("news", "spam", versions[0]) is None


def run(redis_url: str, *args: str):
    return CliRunner().invoke(main, list(args), env=moderation_env(redis_url))


def test_the_command_line_lists_shows_and_rolls_back(redis_server, redis_client, make_site):
    make_site("news")
    registry = ModelRegistry(redis_client)
    promote(registry)
    promote(registry)
    listed = run(redis_server.url, "models", "list", "--site", "news")
    assert listed.exit_code == 0, listed.output
    assert "spam: spam-base-1+news.v2 (version 2)" in listed.output
    assert "version 1 in use: better" in listed.output
    report = json.loads(run(redis_server.url, "models", "list", "--site", "news", "--json").output)
    assert report["models"][0]["version"] == 2 and report["labels"]["spam"] == 0
    shown = run(redis_server.url, "models", "show", "--site", "news", "--kind", "spam")
    assert json.loads(shown.output)["name"] == "spam-base-1+news.v2"
    back = run(redis_server.url, "models", "rollback", "--site", "news", "--kind", "spam")
    assert back.exit_code == 0 and back.output.strip() == "news spam: version 1 in use"
    unknown = run(redis_server.url, "models", "list", "--site", "nope")
    assert unknown.exit_code != 0 and "no site 'nope'" in unknown.output
    missing = run(
        redis_server.url, "models", "rollback", "--site", "news", "--kind", "spam", "--to", "7"
    )
    assert missing.exit_code != 0 and "no stored spam model version 7" in missing.output


def test_get_models_reports_the_sites_labels_and_models(client, auth, redis_client) -> None:
    body = client.get("/v1/models", headers=auth).get_json()
    assert body["labels"] == {"spam": 0, "toxic": 0, "ok": 0, "other": 0}
    assert [m["kind"] for m in body["models"]] == ["spam", "toxicity"]
    assert body["models"][0]["version"] == 0 and body["learning"] is True
    promote(ModelRegistry(redis_client))
    spam = client.get("/v1/models", headers=auth).get_json()["models"][0]
    assert (spam["version"], spam["in_use"]) == (1, "spam-base-1+news.v1")
    assert spam["held_out"] == {"auc": 0.99} and spam["trained_at"].endswith("Z")
