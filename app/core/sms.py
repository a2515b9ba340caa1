"""Sending SMS (OTP login codes) behind one small interface, after the database commits.

**Senders** implement ``SmsSender.send(phone, text, *, template, params)``; the setting
``MICROWISH_SMS_SENDER`` picks one:

- ``file`` (the default): appends one JSON line per message to ``MICROWISH_SMS_FILE``
  (``data/sms.jsonl``): ``{"phone": "+86…", "code": "123456", "text": …, "template": …,
  "params": {…}, "sent_at": "…Z"}``. For development and tests: read your code with
  ``tail -n 1 data/sms.jsonl``.
- ``log``: writes the message to the log (phone masked, the text with its code). Development
  only.

**A real provider** goes here: a class with the same ``send`` (for example an
``AliyunSmsSender`` calling Aliyun's ``SendSms`` with its ``SignName``, a ``TemplateCode``
looked up from ``template``, and ``TemplateParam`` = ``json.dumps(params)``, through an async
HTTP client with a timeout), its name added to ``Settings.sms_sender``, its credentials as
``MICROWISH_SMS_*`` settings, and a branch in ``create_sms_sender``. Mainland-China providers
send only pre-approved templates filled with parameters, never free text: that is why a message
carries ``template`` and ``params`` besides its rendered ``text``. A sender raises on failure;
``SmsOutbox`` logs it.

**When**: ``SmsOutbox.send_after_commit`` sends from a task started only once the request's
transaction has committed (SQLAlchemy's ``after_commit`` event; also under an
``Idempotency-Key``, where the commit happens later than the handler's return). So no code is
ever sent that was not stored, the response does not wait for the provider, and no database
transaction (SQLite's single write lock above all) is held during the network call. A send that
fails or is lost with the process is harmless: the stored code expires unused, and the user asks
for another after the resend cooldown. The development senders (``file``, ``log``) write in the
commit itself, before the response leaves, so a client (or a test) that reads the file on the
202 finds its code there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import utcnow
from app.core.phone import mask_phone
from app.core.types import rfc3339

logger = logging.getLogger("microwish.sms")


class SmsSender(Protocol):
    async def send(
        self, phone: str, text: str, *, template: str, params: Mapping[str, str]
    ) -> None:
        """Send ``text`` to ``phone`` (E.164); ``template`` and ``params`` are the same
        message for template-based providers. Raise if it could not be sent."""
        ...


class FileSmsSender:
    """Appends each message as one JSON line to a file (development and tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    async def send(
        self, phone: str, text: str, *, template: str, params: Mapping[str, str]
    ) -> None:
        await anyio.to_thread.run_sync(self._append, self._line(phone, text, template, params))

    def send_now(self, phone: str, text: str, *, template: str, params: Mapping[str, str]) -> None:
        """Append at once (a local write of one line): the outbox calls this in the commit,
        so the code is in the file before the response leaves."""
        self._append(self._line(phone, text, template, params))

    @staticmethod
    def _line(phone: str, text: str, template: str, params: Mapping[str, str]) -> str:
        record = {
            "phone": phone,
            "code": params.get("code"),
            "text": text,
            "template": template,
            "params": dict(params),
            "sent_at": rfc3339(utcnow()),
        }
        return json.dumps(record, ensure_ascii=False) + "\n"

    def _append(self, line: str) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write of one line in append mode: lines of several processes do not mix.
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line)


class LogSmsSender:
    """Writes each message to the log (development only: the text holds the code)."""

    async def send(
        self, phone: str, text: str, *, template: str, params: Mapping[str, str]
    ) -> None:
        self.send_now(phone, text, template=template, params=params)

    def send_now(self, phone: str, text: str, *, template: str, params: Mapping[str, str]) -> None:
        logger.info("SMS to %s [%s]: %s", mask_phone(phone), template, text)


def create_sms_sender(settings: Settings) -> SmsSender:
    if settings.env == "production":
        logger.warning(
            "MICROWISH_SMS_SENDER=%s does not reach phones: OTP login needs a real SMS "
            "provider (see app/core/sms.py)",
            settings.sms_sender,
        )
    if settings.sms_sender == "log":
        return LogSmsSender()
    return FileSmsSender(settings.sms_file)


@dataclass(frozen=True)
class SmsMessage:
    phone: str
    text: str
    template: str
    params: Mapping[str, str] = field(default_factory=dict)


class SmsOutbox:
    """Sends messages once the transaction that asked for them has committed."""

    def __init__(self, sender: SmsSender) -> None:
        self.sender = sender
        self._pending: set[asyncio.Task[None]] = set()

    def send_after_commit(self, session: AsyncSession, message: SmsMessage) -> None:
        """Send ``message`` when ``session`` commits; never if it rolls back."""

        def on_commit(_session: Any) -> None:
            # Runs inside the commit, on the event loop's thread, before the response leaves.
            # A local sender (file, log) writes at once, so the code is there when the client
            # reads the answer; a provider's network call is started, not waited for.
            send_now = getattr(self.sender, "send_now", None)
            if send_now is not None:
                try:
                    send_now(
                        message.phone,
                        message.text,
                        template=message.template,
                        params=message.params,
                    )
                except Exception:
                    logger.exception("SMS to %s failed", mask_phone(message.phone))
                return
            task = asyncio.get_running_loop().create_task(self._deliver(message))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        event.listen(session.sync_session, "after_commit", on_commit, once=True)

    async def _deliver(self, message: SmsMessage) -> None:
        try:
            await self.sender.send(
                message.phone, message.text, template=message.template, params=message.params
            )
        except Exception:
            logger.exception("SMS to %s failed", mask_phone(message.phone))

    async def drain(self) -> None:
        """Wait for the sends under way (at shutdown, and in tests)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
