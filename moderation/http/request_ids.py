"""Request ids for the API: every request gets one, its log lines and the jobs it enqueues carry
it, and the response echoes it (`X-Request-Id`)."""

from __future__ import annotations

from flask import Flask, Response, g, request

from moderation.core.logs import (
    REQUEST_ID_HEADER,
    new_request_id,
    request_id_var,
    valid_request_id,
)


def init_request_ids(app: Flask) -> None:
    """Give every request an id: a valid incoming X-Request-Id, else a new one. It is set in
    `request_id_var` (so logs carry it) and `g.request_id`, and echoed in the response."""

    def start_request_id() -> None:
        request_id = valid_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
        g.request_id = request_id
        g._request_id_token = request_id_var.set(request_id)

    def echo_request_id(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    def reset_request_id(error: BaseException | None) -> None:
        token = g.pop("_request_id_token", None)
        if token is not None:
            try:
                request_id_var.reset(token)
            except ValueError:  # set in another context: at least do not leak it onwards
                request_id_var.set(None)

    # First of the app's before_request hooks, so that lines they log carry the id too.
    app.before_request_funcs.setdefault(None, []).insert(0, start_request_id)
    app.after_request(echo_request_id)
    app.teardown_request(reset_request_id)
