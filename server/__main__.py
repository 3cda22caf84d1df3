"""`python -m server`: the depth server on 127.0.0.1:8000 with SQLite, zero configuration.

python -m server [--host H] [--port P] [--config server.toml]
DATABASE_URL=postgresql://user@host/db python -m server
python -m server migrate [--check]     # apply (or check) the database schema's migrations
"""

import argparse
import sys

import uvicorn

from . import migrate
from .app import create_app
from .config import settings_or_exit
from .db import open_database
from .requestid import configure_logging


def _migrate(argv):
    parser = argparse.ArgumentParser(
        prog="python -m server migrate", description="Apply the database schema's missing migrations."
    )
    parser.add_argument("--config", help="TOML settings file (else FATHOM_SERVER_CONFIG)")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when not up to date")
    args = parser.parse_args(argv)
    settings = settings_or_exit(args.config)
    db = open_database(settings.database)
    try:
        if args.check:
            migrate.check(db)
            print(f"The database is at schema version {migrate.latest()}: up to date.")
            return 0
        applied = migrate.migrate(db)
        print(
            f"Applied {', '.join(applied)}." if applied else "Nothing to apply.",
            f"Schema version {migrate.current(db)}.",
        )
        return 0
    except migrate.SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["migrate"]:
        return _migrate(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m server", description="Run the Fathom depth server.")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--config", help="TOML settings file (else FATHOM_SERVER_CONFIG)")
    args = parser.parse_args(argv)
    settings = settings_or_exit(args.config, host=args.host, port=args.port)
    configure_logging(settings.log_level)
    print(
        f"Fathom depth server on http://{settings.host}:{settings.port} (database: "
        f"{settings.database.split('@')[-1]}, data: {settings.data_dir})",
        flush=True,
    )
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level, access_log=False
    )


if __name__ == "__main__":
    sys.exit(main())
