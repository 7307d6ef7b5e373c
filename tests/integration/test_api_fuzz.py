"""Schemathesis against the committed OpenAPI document: every operation of the operator API, fuzzed on real
PostgreSQL, three times — as the owner (no 5xx; status codes, content types and bodies as documented), as a
tenant's viewer (no 5xx, no write accepted, nothing published), and without a token or with a wrong one
(401 everywhere but the login flow). Operations are read from schemas/openapi.json, so an endpoint added to
the document is fuzzed with no change here.

``FUZZ_EXAMPLES`` sets the examples per operation (``make fuzz`` runs many); the run is derandomised, so the
same document gives the same requests.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case

from tests.support.operator_stack import ENV, JOB_ID, Stack, ThreadedStack
from tests.support.platform import Infra

pytestmark = [pytest.mark.integration, pytest.mark.broker]

OPENAPI = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))  # make test's slice; make fuzz runs 200
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# the only operations a request without a token reaches: the login flow (a person sent by the identity
# provider has no token yet); the document itself is served publicly too, but it is not an operation of it
PUBLIC = {("GET", "/auth/login/{provider}"), ("GET", "/auth/callback/{provider}")}
# a viewer's POST that changes nothing: exchanging its own token for a short-lived JWT
VIEWER_MAY = {("POST", "/auth/token")}
GARBAGE = ["Bearer garbage", "Bearer agb_0123456789ab_" + "x" * 43, "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
           "Basic dXNlcjpwdw==", "Bearer ", "Bearer agb_" + "0" * 12 + "_x"]
WRONG = itertools.cycle(GARBAGE)  # each case is sent without a token and with the next of these

# path parameters are drawn from the fuzzer's values or from what exists, so that requests reach past the
# "no such resource" answers into the handlers; filled when the stack is up (token ids are only known then)
KNOWN: dict[str, list[Any]] = {"tenant": ["acme", "globex"], "job_id": [JOB_ID], "agent": ["assistant", "helper"],
                               "model": ["fake"], "channel": ["acme-hook", "globex-hook"],
                               "provider": ["feishu", "dingtalk"]}


def flatmap_case(_: Any, case: Case) -> st.SearchStrategy[Case]:
    """A valid case may have its path parameters swapped for existing ones (an invalid case stays invalid)."""
    params = case.path_parameters
    if not params or case.meta is None or not case.meta.generation.mode.is_positive:
        return st.just(case)

    def with_params(chosen: dict[str, Any]) -> Case:
        case.path_parameters = chosen
        return case

    return st.fixed_dictionaries({k: st.sampled_from([v, *KNOWN.get(k, [])]) for k, v in params.items()}).map(
        with_params)


def load(coverage: bool) -> schemathesis.BaseSchema:
    """The committed document, one loaded per pass (each with its own phases)."""
    loaded = schemathesis.openapi.from_path(str(OPENAPI))
    loaded.config.generation.update(max_examples=EXAMPLES, deterministic=True,
                                    with_security_parameters=False)  # the token is the test's, not generated
    # a request the document allows may still be refused by what it cannot express (a body's id that differs
    # from the path's, a configuration naming an unknown agent): a 422 naming the key is the answer to bad input
    loaded.config.checks.positive_data_acceptance.expected_statuses.append("422")
    # the coverage phase's boundary values and other methods matter where answers are checked in detail
    loaded.config.phases.coverage.enabled = coverage
    loaded.hook(flatmap_case)
    return loaded


fuzz = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

owner_schema, viewer_schema, anonymous_schema = load(coverage=True), load(coverage=False), load(coverage=False)


class Running:
    def __init__(self, threaded: ThreadedStack, stack: Stack) -> None:
        self.threaded, self.stack = threaded, stack
        self.http = requests.Session()

    def base(self) -> str:
        return self.stack.url

    def fresh(self) -> None:
        self.threaded.run(self.stack.reset_config())


@pytest.fixture(scope="module")
def api(infra: Infra) -> Iterator[Running]:
    threaded = ThreadedStack(infra.database_url, infra.bootstrap)
    with pytest.MonkeyPatch.context() as env:
        for name, value in ENV.items():
            env.setenv(name, value)
        with threaded as stack:
            KNOWN["token_id"] = [stack.token_ids["acme-admin"]]
            running = Running(threaded, stack)
            yield running
            running.http.close()


def key(case: Case) -> tuple[str, str]:
    """The documented operation (a case may send another method to its path, to see it refused)."""
    return case.operation.method.upper(), case.operation.path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@owner_schema.parametrize()
@fuzz
def test_as_owner_every_answer_is_documented_and_none_is_a_server_error(case: Case, api: Running) -> None:
    api.fresh()
    case.call_and_validate(base_url=api.base(), session=api.http, headers=bearer(api.stack.tokens["owner"]))


@viewer_schema.parametrize()
@fuzz
def test_a_viewer_writes_nothing_and_meets_no_server_error(case: Case, api: Running) -> None:
    api.fresh()
    before = len(api.stack.bus.commands())
    resp = case.call_and_validate(base_url=api.base(), session=api.http,
                                  headers=bearer(api.stack.tokens["acme-viewer"]))
    if case.method.upper() in WRITES and (case.method.upper(), case.operation.path) not in VIEWER_MAY:
        assert not 200 <= resp.status_code < 300, (key(case), resp.status_code, resp.text[:300])
    assert len(api.stack.bus.commands()) == before, "a viewer's request published a command"


@anonymous_schema.parametrize()
@fuzz
def test_without_a_valid_token_every_operation_but_the_login_flow_is_401(case: Case, api: Running) -> None:
    before = len(api.stack.bus.commands())
    for auth in (None, next(WRONG)):
        headers = {} if auth is None else {"Authorization": auth}
        resp = case.call(base_url=api.base(), session=api.http, headers=headers)
        assert resp.status_code < 500, (key(case), auth, resp.status_code, resp.text[:300])
        if key(case) not in PUBLIC:
            assert resp.status_code == 401, (key(case), auth, resp.status_code, resp.text[:300])
            assert resp.headers.get("www-authenticate", [""])[0].startswith("Bearer"), (key(case), resp.headers)
            assert "error" in resp.json()
    assert len(api.stack.bus.commands()) == before, "a request without a valid token published a command"


def test_the_document_names_exactly_the_public_operations() -> None:
    """Every operation declares the bearer scheme except the login flow: a new public operation has to be
    added to PUBLIC above deliberately."""
    unsecured = {(m.upper(), p) for p, ops in owner_schema.raw_schema["paths"].items() for m, op in ops.items()
                 if isinstance(op, dict) and not op.get("security")}
    assert unsecured == PUBLIC
