"""The HTTP API: flask-smorest's Api with the contract's error format, and its blueprints."""

from __future__ import annotations

import json
from typing import Any

import flask
import flask_smorest
from webargs.flaskparser import FlaskParser, abort
from werkzeug.exceptions import HTTPException

from moderation.http.api.spec import ErrorResponsesPlugin
from moderation.http.errors import error_response, from_http_exception
from moderation.http.schemas import ErrorSchema


class Api(flask_smorest.Api):
    """flask-smorest's Api, answering errors in the contract's `{"error": ...}` form and
    documenting them per operation (`api.spec`) instead of as one catch-all `default`."""

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _init_spec(self, *, extra_plugins: Any = None, **options: Any) -> None:
        plugins = [*(extra_plugins or ()), ErrorResponsesPlugin()]
        super()._init_spec(extra_plugins=plugins, **options)

    def handle_http_exception(self, error: HTTPException) -> Any:
        return error_response(from_http_exception(error))


class StrictJSONParser(FlaskParser):
    """webargs' parser, also refusing (400, not 500) JSON that Python cannot read although it is
    well formed: nested too deeply, or an integer longer than Python converts (4300 digits)."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise  # webargs' own 400
        except RecursionError:
            abort(400, messages={"json": ["JSON nested too deeply."]})
        except ValueError:
            abort(400, messages={"json": ["A number in the JSON is too long."]})


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictJSONParser()
