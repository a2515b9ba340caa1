"""A phone's copy of its user's data, kept by delta sync the way the README tells app
developers to, and the same data read from the ordinary endpoints, to compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

Entry = dict[str, Any]
SECTIONS = ("wishes", "claims", "notifications")
_SECTION_OF = {"wish": "wishes", "claim": "claims", "notification": "notifications"}


@dataclass
class Changes:
    """What a pull changed in the copy: ids new or different, ids dropped. A delta may
    repeat what the copy already holds (on PostgreSQL, whatever was still being written,
    anywhere on the server, when the token was issued); repeats change nothing here."""

    pages: list[Entry] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    removed: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SECTIONS})

    @property
    def none(self) -> bool:
        return not any(self.changed.values()) and not any(self.removed.values())


@dataclass
class Replica:
    wishes: dict[str, Entry] = field(default_factory=dict)
    claims: dict[str, Entry] = field(default_factory=dict)
    notifications: dict[str, Entry] = field(default_factory=dict)
    token: str | None = None

    def apply(self, page: Entry, changes: Changes | None = None) -> None:
        changes = changes if changes is not None else Changes()
        if page["reset"]:
            for name in SECTIONS:
                dropped: dict[str, Entry] = getattr(self, name)
                changes.removed[name].extend(dropped)
                dropped.clear()
        for name in SECTIONS:
            held: dict[str, Entry] = getattr(self, name)
            for item in page[name]:
                if held.get(item["id"]) != item:
                    changes.changed[name].append(item["id"])
                held[item["id"]] = item
        for tombstone in page["tombstones"]:
            name = _SECTION_OF[tombstone["type"]]
            held = getattr(self, name)
            if held.pop(tombstone["id"], None) is not None:
                changes.removed[name].append(tombstone["id"])
        self.token = page["next_token"]
        changes.pages.append(page)

    async def pull(
        self, client: httpx.AsyncClient, headers: dict[str, str], *, limit: int | None = None
    ) -> Changes:
        """Sync until ``has_more`` is false, as the README tells app developers to."""
        changes = Changes()
        while True:
            params: dict[str, str | int] = {}
            if self.token is not None:
                params["since"] = self.token
            if limit is not None:
                params["limit"] = limit
            response = await client.get("/v1/sync", params=params, headers=headers)
            assert response.status_code == 200, response.text
            page: Entry = response.json()
            self.apply(page, changes)
            if not page["has_more"]:
                return changes


async def _all_pages(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any
) -> list[Entry]:
    items: list[Entry] = []
    cursor = None
    while True:
        query = {"limit": 100, **params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


@dataclass
class ServerState:
    wishes: dict[str, Entry]
    claims: dict[str, Entry]
    notifications: dict[str, Entry]


async def server_state(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    user_id: str,
    communities: set[str],
) -> ServerState:
    """What the user's sync should hold, from the ordinary endpoints: their wishes, the ones
    they hold a live claim on and the open ones of ``communities``, each as
    GET /v1/wishes/{id} shows it; GET /v1/me/claims; GET /v1/me/notifications."""
    claims = {c["id"]: c for c in await _all_pages(client, "/v1/me/claims", headers)}
    live = {c["wish_id"] for c in claims.values() if c["status"] in ("active", "fulfilled")}
    listed = await _all_pages(client, "/v1/wishes", headers)
    wanted = {
        w["id"]
        for w in listed
        if user_id in (w["resident_id"], w["creator_id"])
        or w["id"] in live
        or (w["status"] == "open" and w["community_id"] in communities)
    }
    wanted |= live
    wishes: dict[str, Entry] = {}
    for wish_id in sorted(wanted, key=int):
        response = await client.get(f"/v1/wishes/{wish_id}", headers=headers)
        assert response.status_code == 200, response.text
        wishes[wish_id] = response.json()
    notifications = {n["id"]: n for n in await _all_pages(client, "/v1/me/notifications", headers)}
    return ServerState(wishes=wishes, claims=claims, notifications=notifications)


def assert_same(replica: Replica, state: ServerState) -> None:
    for name in SECTIONS:
        held: dict[str, Entry] = getattr(replica, name)
        truth: dict[str, Entry] = getattr(state, name)
        missing = sorted(set(truth) - set(held), key=int)
        extra = sorted(set(held) - set(truth), key=int)
        stale = sorted((k for k in set(truth) & set(held) if truth[k] != held[k]), key=int)
        assert not missing, f"{name}: missing {missing}"
        assert not extra, f"{name}: extra {extra}"
        assert not stale, f"{name}: stale {[(held[k], truth[k]) for k in stale[:3]]}"
