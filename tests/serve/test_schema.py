"""The OpenAPI schema says what the service does: schemathesis drives every operation with
schema-derived (positive) and schema-violating (negative) requests and runs its checks:
no 5xx, documented status codes and content types, responses matching their schemas, valid
requests accepted and invalid ones refused. Derandomised and bounded (about a minute)."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from tests.serve.conftest import KEY  # noqa: E402

import os  # noqa: E402

# per operation and mode: 11 operations x 2 modes -> ~600 requests; more with LONGREC_SCHEMA_EXAMPLES
EXAMPLES = int(os.environ.get("LONGREC_SCHEMA_EXAMPLES", "40"))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from longrec.serve import ServeSettings, create_app
    from tests.serve.conftest import save_model

    d = tmp_path_factory.mktemp("schema")
    model = save_model(d / "model")
    a = create_app(model, db_url=f"sqlite:///{d / 'events.db'}",
                   settings=ServeSettings(encoder="hash", api_key=KEY, sqlite_synchronous="NORMAL"))
    yield a
    a.state.service.store.close()


def test_api_conforms_to_its_schema(app):
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    n_ops = 0
    for result in schema.get_all_operations():
        op = result.ok()
        n_ops += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=op.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            def run(case):
                case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"})

            try:
                run()
            except Unsatisfiable:  # e.g. no negative request exists for an operation without inputs
                pass
            except BaseException as e:  # noqa: BLE001 - collect every operation's failure, then report them all
                failures.append(f"{op.label} [{mode.value}]: {str(e)[:1500]}")
    assert n_ops >= 10
    sent = sum(app.state.metrics.requests.values())
    statuses = {st for (_, _, st) in app.state.metrics.requests}
    print(f"schemathesis: {n_ops} operations, {sent} requests, statuses {sorted(statuses)}")
    assert sent >= min(300, 7 * EXAMPLES) and {200, 422} <= statuses  # it did exercise the service, valid and invalid
    assert not failures, "\n\n".join(failures)
