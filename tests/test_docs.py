"""The OpenAPI document is generated from the schemas, and /docs renders it offline."""

from __future__ import annotations

import re


def test_openapi_documents_every_api_route(app, client):
    document = client.get("/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = set(document["paths"])
    served = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/") and rule.rule != "/v1/openapi.json"
    }
    assert served <= documented
    for required in ("/v1/comments", "/v1/comments/{comment_id}", "/v1/policy", "/healthz"):
        assert required in documented


def test_request_schemas_are_the_validating_ones(client):
    document = client.get("/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    submission = schemas["CommentSubmission"]
    assert set(submission["required"]) == {"id", "content"}
    assert submission["properties"]["content"]["maxLength"] == 20_000
    assert submission["additionalProperties"] is False
    post = document["paths"]["/v1/comments"]["post"]
    assert {"202", "200", "409", "422"} <= set(post["responses"])


def test_docs_page_uses_only_local_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert all(source.startswith("/docs/assets/") for source in sources)
    for source in sources:
        with client.get(source) as asset:
            assert asset.status_code == 200, source
            assert len(asset.data) > 1000
    assert "/v1/openapi.json" in html
