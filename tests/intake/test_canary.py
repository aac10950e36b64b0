"""With a canary beside the live release the pipeline decides a batch in two parts; the intake
commits both parts and the source's cursor in one transaction."""

from __future__ import annotations

from pathlib import Path

from tests.cli.kit import lockgate
from tests.intake.kit import (
    assert_accounted,
    drop,
    folder_source,
    intake_once,
    prepare,
    query,
    show,
)


def test_a_batch_split_between_live_and_canary_is_committed_whole(
    tmp_path: Path, database_url: str
) -> None:
    project = prepare(tmp_path / "p", database_url, folder_source(key="'{id}'"))
    task = project / "tasks" / "routing.yaml"
    task.write_text(task.read_text().replace("confidence: 0.9", "confidence: 0.95"))
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate(
        "release", "canary", "routing@2", "--percent", "50", cwd=project, database=database_url
    )
    drop(project, "a.csv", "id,text\n" + "".join(f"{i},ticket {i}\n" for i in range(200)))

    (report,) = intake_once(project, database_url)

    assert report["decided"] == 200
    by_release = dict(
        tuple(r)
        for r in query(database_url, "select release, count(*) from decisions group by release")
    )
    assert set(by_release) == {1, 2} and sum(by_release.values()) == 200
    counts = show(project, database_url, "inbox")
    assert_accounted(counts)
    assert (counts["records"], counts["decided"], counts["cursor"]["row"]) == (200, 200, 200)
