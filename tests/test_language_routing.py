"""Languages through real worker processes: each decision names the comment's language; a
comment in a language no live model reads follows the site policy's `unscored_languages`; one
that another live worker reads is handed over to it, whichever worker took it first."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.support.processes import running_worker, wait_for
from tests.support.redis_server import RedisServer
from tests.support.tiny_detoxify import TinyDetoxify

pytestmark = pytest.mark.e2e

INSULTS = {
    "fr": "Espèce de connard, tu es un imbécile fini et personne ne veut de toi ici.",
    "de": "Du bist ein verdammter Vollidiot, halt endlich die Klappe, niemand will dich hier.",
    "es": "Eres un idiota de mierda y nadie te quiere aquí, cállate de una vez.",
    "pt": "Você é um idiota imbecil e ninguém quer você aqui, cala essa boca.",
    "it": "Sei un cretino e un idiota, nessuno ti vuole qui, stai zitto.",
}
PLAIN_ENGLISH = "I disagree with the budget figures in this article, but it is well argued."


def post(client: FlaskClient, auth: dict, comment_id: str, content: str, **context) -> None:
    body = {"id": comment_id, "content": content, "context": context}
    response = client.post("/v1/comments", json=body, headers=auth)
    assert response.status_code == 202, response.get_json()


def decided(client: FlaskClient, auth: dict, comment_id: str, timeout: float = 60) -> dict:
    """The record once decided (the API blocks on the decision; the loop bounds the retries)."""
    return wait_for(
        lambda: (
            (r := client.get(f"/v1/comments/{comment_id}?wait=5", headers=auth).get_json())
            and r["decision"]
            and r
        ),
        timeout=timeout,
        what=f"a decision on {comment_id}",
    )


@pytest.fixture
def lite_worker(redis_server: RedisServer, redis_client, tmp_path: Path):
    """The default install here: `auto` falls back to `lite`, which reads English only."""
    with running_worker(redis_server.url, tmp_path / "lite.log") as process:
        yield process


def test_default_install_holds_insults_in_languages_it_cannot_read(client, auth, lite_worker):
    for language, text in INSULTS.items():
        post(client, auth, f"insult-{language}", text)
    post(client, auth, "plain", PLAIN_ENGLISH)
    post(client, auth, "hinted", PLAIN_ENGLISH.replace("budget", "tax"), language="fr")

    for language in INSULTS:
        decision = decided(client, auth, f"insult-{language}")["decision"]
        assert decision["action"] == "hold", (language, decision)
        assert decision["language"] == language
        assert f"language {language}: no model" in decision["reasons"]
        # Spam is scored in every language; the toxicity scores are those of the model there is.
        assert set(decision["scores"]) >= {"toxicity", "spam"}
    plain = decided(client, auth, "plain")
    assert plain["status"] == "approved" and plain["decision"]["language"] == "en"
    assert plain["decision"]["reasons"] == []
    # The host's language is a hint, not the truth.
    hinted = decided(client, auth, "hinted")
    assert hinted["status"] == "approved" and hinted["decision"]["language"] == "en"

    exposition = client.get("/metrics").get_data(as_text=True)
    assert 'moderation_comment_languages_total{language="fr",read="no"} 1.0' in exposition
    assert 'moderation_comment_languages_total{language="en",read="yes"} 2.0' in exposition


def test_policy_can_approve_unscored_languages(client, auth, lite_worker):
    policy = client.get("/v1/policy", headers=auth).get_json()
    assert policy["unscored_languages"] == "hold"
    changed = client.put("/v1/policy", json={"unscored_languages": "approve"}, headers=auth)
    assert changed.status_code == 200 and changed.get_json()["unscored_languages"] == "approve"
    bad = client.put("/v1/policy", json={"unscored_languages": "reject"}, headers=auth)
    assert bad.status_code == 422 and "unscored_languages" in str(bad.get_json())

    post(client, auth, "french", "Merci pour cet article, je suis tout à fait d'accord avec vous.")
    record = decided(client, auth, "french")
    assert record["status"] == "approved"
    assert record["decision"]["language"] == "fr" and record["decision"]["reasons"] == []


def test_comments_reach_a_worker_that_reads_their_language(
    client, auth, redis_server: RedisServer, tiny_detoxify: TinyDetoxify, tmp_path: Path
):
    """A `lite` worker (English) and a Detoxify worker declared to read French only: whichever
    takes a comment first, English ones are decided by `lite`, French ones by Detoxify."""
    french_reader = {
        "MODERATION_TOXICITY_MODEL": f"detoxify:{tiny_detoxify.checkpoint}",
        "MODERATION_DETOXIFY_CONFIG_DIR": str(tiny_detoxify.config_dir),
        "MODERATION_TOXICITY_LANGUAGES": "fr",
    }
    french = [
        "Merci pour cet article, je suis tout à fait d'accord avec vous.",
        "Je ne suis pas d'accord avec l'auteur sur les chiffres du budget.",
        "C'est une très bonne analyse de la situation politique actuelle.",
        "Espèce de connard, tu es un imbécile fini et personne ne veut de toi ici.",
    ]
    english = [
        PLAIN_ENGLISH,
        "Thanks for writing this, it helped me understand the new rules.",
        "The mayor should answer these questions before the vote next week.",
        "Great reporting as always, keep it up.",
    ]
    with (
        # a short sweep: a comment handed over to a worker that is gone comes back sooner
        running_worker(redis_server.url, tmp_path / "lite.log", {"MODERATION_SWEEP_AFTER": "2"}),
        running_worker(redis_server.url, tmp_path / "french.log", french_reader) as reader,
    ):
        for i, text in enumerate(french):
            post(client, auth, f"fr-{i}", text)
        for i, text in enumerate(english):
            post(client, auth, f"en-{i}", text)
        for i in range(len(french)):
            decision = decided(client, auth, f"fr-{i}")["decision"]
            assert decision["language"] == "fr"
            assert decision["models"]["toxicity"].startswith("detoxify:"), decision
            assert not any("no model" in reason for reason in decision["reasons"])
        for i in range(len(english)):
            decision = decided(client, auth, f"en-{i}")["decision"]
            assert decision["language"] == "en" and decision["models"]["toxicity"] == "lite"

        reader.terminate()
        reader.wait(timeout=30)
        # With the French reader gone, French comments follow the policy again (a comment
        # handed over meanwhile goes back to the shared queue by the sweeper).
        post(client, auth, "fr-after", french[0])
        decision = decided(client, auth, "fr-after", timeout=120)["decision"]
        assert decision["language"] == "fr" and decision["models"]["toxicity"] == "lite"
        assert "language fr: no model" in decision["reasons"]
