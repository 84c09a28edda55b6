"""Schemathesis against the served OpenAPI document, authenticated: no 5xx, and every
response matches the document (status codes, content types, bodies, headers)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import TIMEOUT, ServerThread

#: Left to their own tests: these end the session or stream forever.
SKIP = {("POST", "/api/logout"), ("POST", "/api/password"), ("GET", "/api/events"),
        ("GET", "/api/mic-level")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
MAX_EXAMPLES = 12


@pytest.mark.slow
def test_api_matches_its_openapi_document(server_thread: ServerThread) -> None:
    http = requests.Session()
    r = http.post(f"{server_thread.url}/api/login", json={"password": server_thread.password},
                  timeout=TIMEOUT)
    assert r.status_code == 200
    headers = {"X-CSRF-Token": r.json()["csrf_token"]}
    served = http.get(f"{server_thread.url}/api/openapi.json", timeout=TIMEOUT)
    assert served.status_code == 200
    schema = schemathesis.openapi.from_dict(_as_logged_in(served.json()))
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    tested = 0
    for op in operations:
        if (op.method.upper(), op.path) in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            checks = CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE
                               else [])
            _fuzz(op, mode, server_thread.url, http, headers, checks)
        tested += 1
    assert tested >= 18


def _as_logged_in(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as a logged-in client sees it: the session cookie and CSRF header are
    sent on every request, so they are not parameters to fuzz (tests/web/test_security.py
    covers requests without them)."""
    doc["components"].pop("securitySchemes")
    doc.pop("security")
    for item in doc["paths"].values():
        for op in item.values():
            op.pop("security", None)
    return doc


def _fuzz(op: Any, mode: GenerationMode, base_url: str, http: requests.Session,
          headers: dict[str, str], checks: list[Any]) -> None:
    if mode == GenerationMode.NEGATIVE and not len(op.body) and not list(op.iter_parameters()):
        return  # nothing in the request to make invalid
    strategy = op.as_strategy(generation_mode=mode)

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, data=st.data())
    def run(case: Any, data: Any) -> None:
        response = case.call(base_url=base_url, session=http, headers=headers, timeout=TIMEOUT)
        case.validate_response(response, checks=checks)

    run()
