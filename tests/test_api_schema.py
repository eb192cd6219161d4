"""The service API against its own OpenAPI schema, with schemathesis generating inputs (valid
and not) for every operation of a running station: no input may make it fail with a 5xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from hotline.station.launch import StationProcess, make_pair


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StationProcess]:
    london, moscow = make_pair(tmp_path_factory.mktemp("schema"))
    for station in (london, moscow):
        station.start()
    deadline = time.monotonic() + 60
    while london.call("GET", "/api/v1/status")["links"][0]["state"] != "UP":
        assert time.monotonic() < deadline, "the link did not come UP"
        time.sleep(0.1)
    london.call("POST", "/api/v1/links/moscow/messages", {"text": "for the inbox and outbox"})
    yield london
    for station in (london, moscow):
        station.close()


def test_no_input_makes_the_api_fail(running: StationProcess) -> None:
    """Each operation in the schema (the event stream aside: it never ends by itself, and
    test_station.py reads it), with inputs that fit the schema and inputs that do not."""
    token = Path(running.data.token_file).read_text().strip()
    schema = schemathesis.openapi.from_url(f"{running.api}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    tried = [op.label for op in operations if op.path != "/api/v1/events"]
    assert "POST /api/v1/links/{name}/messages" in tried
    calls: list[int] = []
    for operation in operations:
        if operation.path == "/api/v1/events":
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            calls.append(1)
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"},
                checks=[not_a_server_error],
                timeout=30,
            )

        no_server_error()
    assert len(calls) >= 10 * len(tried), "every operation was tried many times"
