"""`python -m server`: the depth server on 127.0.0.1:8000 with SQLite, zero configuration.

    python -m server [--host H] [--port P] [--config server.toml]
    DATABASE_URL=postgresql://user@host/db python -m server
"""
import argparse
import logging

import uvicorn

from .app import create_app
from .config import load_settings


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m server", description="Run the Fathom depth server.")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--config", help="TOML settings file (else FATHOM_SERVER_CONFIG)")
    args = parser.parse_args(argv)
    settings = load_settings(args.config, host=args.host, port=args.port)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    print(f"Fathom depth server on http://{settings.host}:{settings.port} (database: "
          f"{settings.database.split('@')[-1]}, data: {settings.data_dir})", flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False)


if __name__ == "__main__":
    main()
