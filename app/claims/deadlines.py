"""Claim deadlines: how long a member has to fulfil a claim, by the wish's category. Plain
values, no I/O.

A wish's own deadline is the last moment to *claim* it (an unclaimed wish expires then); a
claim made before it keeps its own period, so a claimed wish is never taken from its
helpers by the wish's deadline.

The claim statement picks a new claim's deadline itself, from the wish row it takes slots
of (``ClaimPeriods``: one period end per category that differs from the default, as bind
parameters), so creating a claim stays one statement and needs no database date
arithmetic. The policy is put in each session's ``info`` by ``install`` (from the
settings, at start-up), so every path that makes claims (direct, events, matching) and the
clock jobs read the same one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.config import Settings, get_settings
from app.core.db import Database

# session.info key holding the DeadlinePolicy.
POLICY_KEY = "microwish_claim_deadlines"


@dataclass(frozen=True)
class ClaimPeriods:
    """The deadlines a claim made now gets: ``default_end``, or the end for its wish's
    category in ``category_ends`` (sorted by category)."""

    default_end: datetime
    category_ends: tuple[tuple[str, datetime], ...] = ()

    @property
    def categories(self) -> tuple[str, ...]:
        """What the claim statement's CASE is built on (it is cached per tuple)."""
        return tuple(category for category, _ in self.category_ends)

    def params(self) -> dict[str, datetime]:
        """The bind parameters of ``repository.claim_deadline``."""
        values = {"deadline_default": self.default_end}
        for index, (_, end) in enumerate(self.category_ends):
            values[f"deadline_{index}"] = end
        return values

    def deadline_for(self, category: str) -> datetime:
        """What the statement's CASE computes, for the statements that are not one (SQLite)."""
        return dict(self.category_ends).get(category, self.default_end)


@dataclass(frozen=True)
class DeadlinePolicy:
    default_days: int = 14
    # (category, days) for the categories whose period differs from the default, sorted.
    days_by_category: tuple[tuple[str, int], ...] = ()
    reminder_lead: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings) -> DeadlinePolicy:
        return cls.of(
            default_days=settings.claim_deadline_days,
            days_by_category=settings.claim_deadline_days_by_category,
            reminder_hours=settings.claim_reminder_hours,
        )

    @classmethod
    def of(
        cls,
        *,
        default_days: int,
        days_by_category: Mapping[str, int] | None = None,
        reminder_hours: int = 24,
    ) -> DeadlinePolicy:
        differing = sorted(
            (category, days)
            for category, days in (days_by_category or {}).items()
            if days != default_days
        )
        return cls(
            default_days=default_days,
            days_by_category=tuple(differing),
            reminder_lead=timedelta(hours=reminder_hours),
        )

    def days_for(self, category: str) -> int:
        return dict(self.days_by_category).get(category, self.default_days)

    def periods(self, now: datetime) -> ClaimPeriods:
        return ClaimPeriods(
            default_end=now + timedelta(days=self.default_days),
            category_ends=tuple(
                (category, now + timedelta(days=days)) for category, days in self.days_by_category
            ),
        )

    def extended(self, deadline: datetime, *, category: str) -> datetime:
        """The one extension: the category's period again."""
        return deadline + timedelta(days=self.days_for(category))


def install(database: Database, settings: Settings) -> None:
    """Sessions of this database carry the deadline policy made from ``settings``."""
    policy = DeadlinePolicy.from_settings(settings)
    for factory in (database.read_sessions, database.write_sessions):
        info = dict(factory.kw.get("info") or {})
        info[POLICY_KEY] = policy
        factory.configure(info=info)


def policy_of(info: Mapping[str, object]) -> DeadlinePolicy:
    """The policy installed on the session (``session.info``); without one (a session not
    made by the app, e.g. a script's), the policy of the environment's settings."""
    policy = info.get(POLICY_KEY)
    if isinstance(policy, DeadlinePolicy):
        return policy
    return DeadlinePolicy.from_settings(get_settings())
