"""A real IMAP server for tests: Debian's `dovecot-imapd`, started unprivileged in a temporary
folder on a free loopback port, with one user and plain-text login (no TLS).

When the test process runs as root, dovecot runs as the `dovecot` system user the package
creates (setpriv), and the folder is handed to that user; otherwise it runs as the caller.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"


def missing() -> str | None:
    """Why no server can be started here, or None."""
    if not Path(DOVECOT).exists():
        return "dovecot is not installed (Debian package dovecot-imapd; scripts/test-tools.sh)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "running as root needs setpriv (util-linux) to drop privileges"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """`with Dovecot() as server:` a running server; `server.port`, `server.user`. Its folder
    is a new temporary one (under the system's, which the `dovecot` user can reach), removed
    on stop."""

    def __init__(self, *, user: str = "lockgate", password: str = "mail-pw") -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="lockgate-dovecot-"))
        self.user = user
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def _config(self, account: str, group: str) -> str:
        f = self.folder
        return f"""\
base_dir = {f}/run
state_dir = {f}/state
instance_name = lockgate-test-{self.port}
log_path = {f}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{f}/mail/%u
mail_fsync = never
default_internal_user = {account}
default_internal_group = {group}
default_login_user = {account}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {f}/passwd
}}
userdb {{
  driver = static
  args = uid={account} gid={group} home={f}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""

    def start(self) -> Dovecot:
        reason = missing()
        if reason is not None:
            raise RuntimeError(reason)
        for sub in ("run", "state", "mail", "home"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        root = os.geteuid() == 0
        account = "dovecot" if root else pwd.getpwuid(os.geteuid()).pw_name
        group = "dovecot" if root else grp.getgrgid(os.getegid()).gr_name
        (self.folder / "dovecot.conf").write_text(self._config(account, group))
        (self.folder / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        command = [DOVECOT, "-F", "-c", str(self.folder / "dovecot.conf")]
        if root:
            uid, gid = pwd.getpwnam(account).pw_uid, grp.getgrnam(group).gr_gid
            for path in [self.folder, *self.folder.rglob("*")]:
                os.chown(path, uid, gid)
            command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()}")
            try:
                with self.connect():
                    return
            except (OSError, imaplib.IMAP4.error):
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not answer in 20 s: {self.log()}")

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def connect(self) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                client.logout()

    def deliver(self, *messages: EmailMessage | bytes, folder: str = "INBOX") -> None:
        """Append messages to `folder` (created when missing), in order, in one session."""
        with self.connect() as client:
            if folder != "INBOX":
                client.create(folder)
            for message in messages:
                data = message if isinstance(message, bytes) else message.as_bytes()
                status, _ = client.append(folder, None, None, data)
                assert status == "OK", status

    def uids(self, folder: str = "INBOX", criteria: str = "ALL") -> list[int]:
        with self.connect() as client:
            status, _ = client.select(folder)
            if status != "OK":
                return []
            _, data = client.uid("SEARCH", criteria)
            return [int(u) for u in data[0].split()] if data and data[0] else []


def message(
    subject: str,
    body: str,
    *,
    sender: str = "customer@example.com",
    html: str | None = None,
    attachments: tuple[str, ...] = (),
    message_id: str | None = None,
) -> EmailMessage:
    """An e-mail as a mail client would send it: text (and HTML) with named attachments."""
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = sender
    mail["To"] = "support@example.com"
    if message_id:
        mail["Message-ID"] = message_id
    mail.set_content(body)
    if html is not None:
        mail.add_alternative(html, subtype="html")
    for name in attachments:
        mail.add_attachment(b"%PDF-1.4 test", maintype="application", subtype="pdf", filename=name)
    return mail
