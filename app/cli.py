"""``microwish``: migrate, serve, create-admin, seed-demo, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import ConfigurationError, Settings, get_settings

T = TypeVar("T")


class CommandError(Exception):
    """A command cannot do its work for a reason its user can fix: one line, exit code 1."""


def _run_in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from app.core.db import create_database
    from app.models import import_all_models

    import_all_models()

    async def runner() -> T:
        database = create_database(settings)
        try:
            async with database.transaction(write=True) as session:
                return await work(session)
        except (OperationalError, ProgrammingError) as exc:
            # SQLite's "no such table", PostgreSQL's undefined_table (42P01).
            if "no such table" in str(exc) or getattr(exc.orig, "sqlstate", None) == "42P01":
                raise CommandError(
                    "the database has no tables yet: run `microwish migrate` first"
                ) from exc
            raise
        finally:
            await database.dispose()

    return asyncio.run(runner())


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app.core import migrate

    migrate.upgrade(settings.database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        log_level=settings.log_level.lower(),
    )
    return 0


def cmd_create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from app.accounts.models import User
    from app.core.phone import normalize_phone
    from app.core.security import hash_password

    try:
        phone = normalize_phone(args.phone)
    except ValueError:
        print(f"error: {args.phone!r} is not a valid phone number", file=sys.stderr)
        return 2
    if not 8 <= len(args.password) <= 128:
        print("error: the password must have 8 to 128 characters", file=sys.stderr)
        return 2

    async def work(session: AsyncSession) -> str:
        password_hash = await hash_password(args.password)
        user = await session.scalar(select(User).where(User.phone == phone))
        if user is None:
            session.add(
                User(
                    phone=phone,
                    display_name=args.name,
                    password_hash=password_hash,
                    is_admin=True,
                )
            )
            return "created"
        user.is_admin = True
        user.password_hash = password_hash
        return "promoted"

    outcome = _run_in_transaction(settings, work)
    print(f"admin {phone} {outcome}")
    return 0


def cmd_seed_demo(args: argparse.Namespace, settings: Settings) -> int:
    from app.demo.people import DemoConflict
    from app.demo.seed import seed_demo

    try:
        report = _run_in_transaction(settings, seed_demo)
    except DemoConflict as exc:
        raise CommandError(str(exc)) from exc
    print(
        f"demo district: {report.streets} streets, {report.communities} communities, "
        f"{report.grids} grids" + ("" if report.created_regions else " (already there)")
    )
    if report.people:
        people = report.people
        print(
            f"demo people: {people.members} members, {people.residents} residents, "
            f"{people.wishes} wishes, {people.claims} claims"
        )
    if report.events:
        print(
            f"demo claim events: {report.events} (one held, with its report; one scheduled "
            "for tomorrow 09:00 Beijing time)"
        )
    print("demo logins (phone / password):")
    for login in report.logins or []:
        print(f"  {login.role:<20} {login.phone}  {login.password}  ({login.display_name})")
    return 0


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    from app.main import create_app

    document = json.dumps(create_app(settings).openapi(), ensure_ascii=False, indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(document)
    else:
        Path(args.output).write_text(document, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microwish", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(handler=cmd_migrate)

    serve = commands.add_parser("serve", help="run the HTTP server (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler=cmd_serve)

    admin = commands.add_parser("create-admin", help="create an admin, or promote a user")
    admin.add_argument("--phone", required=True)
    admin.add_argument("--password", required=True)
    admin.add_argument("--name", default="管理员")
    admin.set_defaults(handler=cmd_create_admin)

    seed = commands.add_parser("seed-demo", help="load the demo district (idempotent)")
    seed.set_defaults(handler=cmd_seed_demo)

    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", default="openapi/openapi.json")
    openapi.set_defaults(handler=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, settings)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
