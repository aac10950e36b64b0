"""Failed sign-ins to the review pages are limited like failed API-key checks: past the limit
the sign-in page answers 429 with `Retry-After`, and a valid key still signs in."""

from __future__ import annotations

import re
from pathlib import Path

from lockgate.server.attempts import FailedAttempts
from tests.server.kit import Api, running_api

LIMIT = 3


def csrf_token(api: Api) -> str:
    form = api.client.get("/ui/sign-in")
    match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert match is not None
    return match.group(1)


def sign_in(api: Api, secret: str) -> int:
    answer = api.client.post(
        "/ui/sign-in",
        data={"csrf_token": csrf_token(api), "api_key": secret},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    if answer.status_code == 429:
        assert int(answer.headers["retry-after"]) > 0
        assert "Too many failed sign-ins" in answer.text
        assert secret not in answer.text
    return answer.status_code


def test_failed_sign_ins_past_the_limit_get_429_and_a_valid_key_still_signs_in(
    tmp_path: Path,
) -> None:
    with running_api(tmp_path, f"sqlite:///{tmp_path}/db.sqlite") as api:
        api.client.app.state.failed_attempts = FailedAttempts(LIMIT, 60.0)  # type: ignore[attr-defined]
        statuses = [sign_in(api, f"lg_wrong-{n}") for n in range(LIMIT + 2)]
        assert statuses == [401] * LIMIT + [429, 429]
        assert sign_in(api, api.key("reviewer")) == 303
