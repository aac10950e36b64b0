"""The IMAP source: messages of a mailbox folder become records with `subject`, `sender`,
`to`, `date`, `message_id`, `body` (text; HTML converted) and `attachments` (names).

Messages are read in UID order past the cursor (UIDVALIDITY, the last UID and the first UID of
its batch), which is committed with the batch's decisions; then they are flagged \\Seen or
moved. A process killed between the commit and the flagging leaves that one batch unflagged, so
each run first flags or moves the cursor's batch again (harmless where it already was). A new
UIDVALIDITY (the folder was recreated) starts again from its first message: keys carry the
validity.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
from collections.abc import Mapping
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

from lockgate.decide.sources import ImapSource
from lockgate.errors import ConfigError
from lockgate.intake.runner import Incoming, Intake, SourcePaused
from lockgate.intake.sources import SourceRun, SourceUnavailable

_BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (
        re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n")
    )
    return "\n".join(line for line in lines if line)


def fields(raw: bytes) -> dict[str, Any]:
    """A message's fields for mapping."""
    mail = message_from_bytes(raw, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    body = ""
    for kind in ("plain", "html"):  # the text part, unless it is empty beside an HTML one
        part = mail.get_body(preferencelist=(kind,))
        if part is not None:
            content = str(part.get_content())
            body = (html_text(content) if kind == "html" else content).strip()
            if body:
                break
    names = [a.get_filename() or "" for a in mail.iter_attachments()]
    return {
        "subject": str(mail.get("Subject", "")),
        "sender": str(mail.get("From", "")),
        "to": str(mail.get("To", "")),
        "date": str(mail.get("Date", "")),
        "message_id": str(mail.get("Message-ID", "")),
        "body": body,
        "attachments": ", ".join(n for n in names if n),
    }


def _uid_set(uids: list[int]) -> str:
    return ",".join(map(str, uids))


def _unavailable(exc: BaseException) -> SourceUnavailable:
    return SourceUnavailable(f"cannot read the mailbox: {type(exc).__name__}")


class _Mailbox:
    """One IMAP session on the source's folder (blocking; run in a thread)."""

    def __init__(self, spec: ImapSource, password: str) -> None:
        factory = imaplib.IMAP4_SSL if spec.tls else imaplib.IMAP4
        self.spec = spec
        self.client = factory(spec.host, spec.port, timeout=spec.timeout_s)
        try:
            self.client.login(spec.user, password)
            status, _ = self.client.select(f'"{spec.folder}"')
            if status != "OK":
                raise SourceUnavailable(f"cannot open the folder {spec.folder}")
            validity = self.client.response("UIDVALIDITY")[1]
            self.validity = int(validity[0]) if validity and validity[0] else 0
        except BaseException:
            self.close()
            raise

    def new_uids(self, after: int) -> list[int]:
        _, data = self.client.uid("SEARCH", f"UID {after + 1}:*")
        found = [int(u) for u in data[0].split()] if data and data[0] else []
        return sorted(u for u in found if u > after)  # "N:*" always matches the last one

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        wanted = ",".join(map(str, uids))
        _, data = self.client.uid("FETCH", wanted, "(UID BODY.PEEK[])")
        messages: dict[int, bytes] = {}
        for item in data:
            if isinstance(item, tuple):
                match = re.search(rb"UID (\d+)", item[0])
                if match:
                    messages[int(match.group(1))] = item[1]
        return messages

    def done(self, wanted: str) -> None:
        """Flag or move the messages of the UID set `wanted` ("3,5" or "3:9")."""
        if self.spec.after == "move":
            self.client.create(f'"{self.spec.move_to}"')  # fails harmlessly when it exists
            if "MOVE" in self.client.capabilities:
                self.client.uid("MOVE", wanted, f'"{self.spec.move_to}"')
                return
            self.client.uid("COPY", wanted, f'"{self.spec.move_to}"')
            self.client.uid("STORE", wanted, "+FLAGS.SILENT", r"(\Deleted)")
            self.client.expunge()
        else:
            self.client.uid("STORE", wanted, "+FLAGS.SILENT", r"(\Seen)")

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.client.logout()


class ImapReader:
    def __init__(self, spec: ImapSource, env: Mapping[str, str]) -> None:
        self.spec = spec
        password = env.get(spec.password_env, "")
        if not password:
            raise ConfigError(
                f"source {spec.name}: the environment variable {spec.password_env} is not set",
                hint=f"export {spec.password_env}=... (the mailbox password)",
            )
        self.password = password

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except (TimeoutError, OSError, imaplib.IMAP4.error, EOFError) as exc:
            raise _unavailable(exc) from None

    async def run(self, intake: Intake, cursor: Mapping[str, Any]) -> SourceRun:
        run = SourceRun()
        box: _Mailbox = await self._call(_Mailbox, self.spec, self.password)
        try:
            same = cursor.get("uidvalidity") == box.validity
            last = int(cursor.get("uid", 0)) if same else 0
            if same and cursor.get("from"):
                await self._call(box.done, f"{int(cursor['from'])}:{last}")
            pending: list[int] = await self._call(box.new_uids, last)
            for start in range(0, len(pending), self.spec.batch_size):
                uids = pending[start : start + self.spec.batch_size]
                messages: dict[int, bytes] = await self._call(box.fetch, uids)
                records = [self._record(box.validity, uid, messages.get(uid)) for uid in uids]

                def position(_: Any, n: int, uids: list[int] = uids) -> dict[str, Any] | None:
                    if not n:
                        return None
                    return {"uidvalidity": box.validity, "uid": uids[n - 1], "from": uids[0]}

                try:
                    outcome = await intake.process(records, position)
                except SourcePaused as paused:
                    # The messages decided before a budget limit cut the batch are done.
                    if paused.settled:
                        await self._call(box.done, _uid_set(uids[: paused.settled]))
                    raise
                if outcome.stopped:
                    run.stopped = outcome.stopped
                    return run
                run.counts.update(outcome.counts)
                run.items.extend(r.position for r in records)
                await self._call(box.done, _uid_set(uids))
            return run
        finally:
            await asyncio.to_thread(box.close)

    def _record(self, validity: int, uid: int, raw: bytes | None) -> Incoming:
        context = {"uid": uid, "uidvalidity": validity}
        position = f"uid {validity}:{uid}"
        if raw is None:
            return Incoming(position, None, f"message uid {uid} could not be fetched", context)
        try:
            values = fields(raw)
        except Exception as exc:  # a malformed message must be quarantined, not crash the poll
            return Incoming(
                position,
                None,
                f"message uid {uid} cannot be parsed ({type(exc).__name__})",
                context,
                unreadable=raw[:2000].decode("utf-8", "replace"),
            )
        return Incoming(position, values, context={**context, "message_id": values["message_id"]})
