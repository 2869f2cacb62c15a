"""Per-site policy: read, replace, validate, version; and that workers apply it."""

from __future__ import annotations

import pytest

from tests.support.processes import running_worker, wait_for

DEFAULT_HOLD_TOXICITY = 0.8


def test_a_new_site_reads_the_service_default_as_version_0(client, auth):
    response = client.get("/v1/policy", headers=auth)
    assert response.status_code == 200
    policy = response.get_json()
    assert policy["version"] == 0
    assert policy["hold"]["toxicity"] == DEFAULT_HOLD_TOXICITY
    assert policy["auto_reject"] is False
    assert policy["premoderate"] is False
    assert policy["max_links"] == 2
    assert policy["banned_words"] == [] and policy["suspect_words"] == []
    assert policy["trusted_after"] == 0
    assert set(policy) >= {"version", "hold", "reject", "premoderate", "max_links"}


def test_put_replaces_the_policy_and_bumps_the_version(client, auth):
    body = {"hold": {"toxicity": 0.5}, "banned_words": ["idiot"], "max_links": 0}
    first = client.put("/v1/policy", json=body, headers=auth)
    assert first.status_code == 200
    assert first.get_json()["version"] == 1
    assert first.get_json()["hold"] == {"toxicity": 0.5}
    assert first.get_json()["banned_words"] == ["idiot"]
    assert first.get_json()["premoderate"] is False  # omitted: the service default

    second = client.put("/v1/policy", json={"premoderate": True, "version": 1}, headers=auth)
    assert second.get_json()["version"] == 2
    assert second.get_json()["banned_words"] == []  # a PUT replaces the whole policy
    assert client.get("/v1/policy", headers=auth).get_json()["version"] == 2


def test_put_with_a_stale_version_is_409(client, auth):
    client.put("/v1/policy", json={"max_links": 1}, headers=auth)
    response = client.put("/v1/policy", json={"max_links": 5, "version": 0}, headers=auth)
    assert response.status_code == 409
    assert response.get_json()["error"]["current"]["version"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hold": {"toxicty": 0.5}}, "hold"),
        ({"hold": {"toxicity": 1.5}}, "hold"),
        ({"max_links": -1}, "max_links"),
        ({"trusted_after": "many"}, "trusted_after"),
        ({"banned_words": ["ok", "!!!"]}, "banned_words"),
        ({"banned_words": ["x" * 101]}, "banned_words"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_policies_are_422_naming_the_field(client, auth, body, field):
    response = client.put("/v1/policy", json=body, headers=auth)
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert any(name == field or name.startswith(field + ".") for name in fields), fields
    assert client.get("/v1/policy", headers=auth).get_json()["version"] == 0


def test_policies_belong_to_one_site(client, auth, make_site):
    other = {"Authorization": f"Bearer {make_site('blog').api_key}"}
    client.put("/v1/policy", json={"premoderate": True}, headers=auth)
    assert client.get("/v1/policy", headers=other).get_json()["premoderate"] is False
    assert client.get("/v1/policy").status_code == 401


@pytest.mark.e2e
def test_policy_changes_change_decisions(client, auth, redis_server, tmp_path):
    """The same comment is approved, then held once the site bans a word in it, with the
    policy version recorded; evasions of the word are caught too."""

    def decide(comment_id: str, content: str) -> dict:
        client.post("/v1/comments", json={"id": comment_id, "content": content}, headers=auth)
        return wait_for(
            lambda: client.get(f"/v1/comments/{comment_id}?wait=5", headers=auth).get_json()[
                "decision"
            ],
            what=comment_id,
        )

    with running_worker(redis_server.url, tmp_path / "worker.log"):
        before = decide("a", "What a nincompoop take on the budget.")
        assert before["action"] == "approve"
        assert before["policy_version"] == 0

        client.put("/v1/policy", json={"banned_words": ["nincompoop"]}, headers=auth)
        after = decide("b", "What a nincompoop take on the budget.")
        assert after["action"] == "hold"
        assert after["reasons"] == ['banned word "nincompoop"']
        assert after["policy_version"] == 1
        assert decide("c", "What a N1nc0mp00p take!")["action"] == "hold"

        client.put("/v1/policy", json={"premoderate": True}, headers=auth)
        held = decide("d", "Lovely weather.")
        assert held["reasons"] == ["site premoderates every comment"]

        client.put(
            "/v1/policy",
            json={"banned_words": ["nincompoop"], "auto_reject": True},
            headers=auth,
        )
        assert decide("e", "nincompoop")["action"] == "reject"
