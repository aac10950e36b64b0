"""`/metrics` serves the process's Prometheus metrics, behind a key unless opened by a setting."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.server.kit import running_api


def decisions_counted(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "lockgate_decisions":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


def test_metrics_need_a_key_by_default(tmp_path: Path, database_url: str) -> None:
    with running_api(tmp_path, database_url) as api:
        assert api.client.get("/metrics").status_code == 401
        api.decide("where is my card", "k-1")
        response = api.client.get("/metrics", headers=api.auth("viewer"))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert decisions_counted(response.text) == 1


def test_the_size_of_each_group_committed_is_a_histogram(
    tmp_path: Path, sqlite_database_url: str
) -> None:
    with running_api(tmp_path, sqlite_database_url, metrics_public=True) as api:
        api.decide("where is my card", "k-1")  # a lone request is a group of one
        text = api.client.get("/metrics").text
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "lockgate_batch_size"]
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("lockgate_batch_size_count", None)] == 1
    assert samples[("lockgate_batch_size_bucket", "1.0")] == 1


def test_metrics_can_be_opened_to_scrapers(tmp_path: Path, database_url: str) -> None:
    with running_api(tmp_path, database_url, metrics_public=True) as api:
        response = api.client.get("/metrics")
        assert response.status_code == 200
        assert "lockgate_decisions" in response.text


def test_a_request_id_is_taken_from_the_caller_only_when_safe() -> None:
    from lockgate.server.decisions import request_id

    assert request_id("abc-123") == "abc-123"
    assert request_id("bad id\nwith newline") != "bad id\nwith newline"
    assert len(request_id(None)) == 32


def sample_tasks(text: str) -> set[str]:
    """The `task` label of every sample, "" for samples without one."""
    return {
        s.labels.get("task", "")
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_key_scoped_to_other_tasks_sees_none_of_this_tasks_series(
    tmp_path: Path, database_url: str
) -> None:
    with running_api(tmp_path, database_url) as api:
        api.decide("where is my card", "k-1")
        response = api.client.get("/metrics", headers=api.auth("viewer", tasks=("billing",)))
        assert response.status_code == 200
        assert "routing" not in response.text
        assert sample_tasks(response.text) <= {"billing"}


def test_a_scoped_key_sees_only_its_tasks_series(tmp_path: Path, database_url: str) -> None:
    with running_api(tmp_path, database_url) as api:
        api.decide("where is my card", "k-1")
        response = api.client.get("/metrics", headers=api.auth("viewer", tasks=("routing",)))
        assert response.status_code == 200
        assert decisions_counted(response.text) == 1
        assert sample_tasks(response.text) == {"routing"}


def test_an_unscoped_key_sees_every_series(tmp_path: Path, database_url: str) -> None:
    with running_api(tmp_path, database_url) as api:
        api.decide("where is my card", "k-1")
        response = api.client.get("/metrics", headers=api.auth("viewer"))
        assert response.status_code == 200
        assert decisions_counted(response.text) == 1
        assert {"routing", ""} <= sample_tasks(response.text)
