"""`python -m server.admin`: users, keys, tokens and the ledger check, on the server's database.

    python -m server.admin create-user alice --tokens 100
    python -m server.admin create-key alice          # prints the key once; only its hash is kept
    python -m server.admin grant alice 50 --note "invoice 1234"
    python -m server.admin ledger [alice] [--limit 20]
    python -m server.admin balance alice
    python -m server.admin revoke-key fth_AbCdEfGh
    python -m server.admin reconcile                 # exit 1 when a balance differs from its ledger
    python -m server.admin models                    # the models offered and whether they are installed
    python -m server.admin download-model small      # fetch and verify one (needs the network)
    python -m server.admin webhooks [--status failed] # the webhook outbox: events and their state
    python -m server.admin redeliver msg_<id>... | --failed   # queue events again, full attempt budget

The database comes from the same settings as the server (DATABASE_URL, FATHOM_SERVER_*, --config).
"""

import argparse
import sys

from engine.errors import FathomError

from . import accounts, outbox
from .config import settings_or_exit
from .db import open_database
from .jobs import iso


def _parser():
    p = argparse.ArgumentParser(prog="python -m server.admin", description="Administer the Fathom depth server.")
    p.add_argument("--config", help="TOML settings file (else FATHOM_SERVER_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create-user", help="create a user (optionally with tokens)")
    c.add_argument("name")
    c.add_argument("--tokens", type=int, default=0)
    c = sub.add_parser("create-key", help="create an API key for a user (shown once)")
    c.add_argument("name")
    c = sub.add_parser("revoke-key", help="revoke a key by the prefix shown when it was created")
    c.add_argument("prefix")
    c = sub.add_parser("grant", help="add tokens to a user's balance (negative to correct)")
    c.add_argument("name")
    c.add_argument("tokens", type=int)
    c.add_argument("--note", default="")
    c = sub.add_parser("balance", help="a user's balance")
    c.add_argument("name")
    c = sub.add_parser("ledger", help="the latest ledger entries (of one user, or everyone)")
    c.add_argument("name", nargs="?")
    c.add_argument("--limit", type=int, default=50)
    sub.add_parser("reconcile", help="check that every balance equals the sum of its ledger entries")
    sub.add_parser("models", help="the API's models, their catalogue ids and whether each is installed")
    c = sub.add_parser("webhooks", help="webhook events, newest first, with their delivery state")
    c.add_argument("--status", choices=("pending", "delivered", "failed"))
    c.add_argument("--limit", type=int, default=50)
    c = sub.add_parser("redeliver", help="queue webhook events again (by id, or every failed one)")
    c.add_argument("ids", nargs="*")
    c.add_argument("--failed", action="store_true", help="every failed event")
    c = sub.add_parser("download-model", help="download (and verify) a model the server offers")
    c.add_argument("name", help="the API model name, e.g. small")
    return p


def _models(settings, args, out) -> int:
    from engine.store import ModelStore

    store = ModelStore(settings.model_dir or None)
    offered = {**{n: c for n, c in settings.models.items()}, **{f"v3:{n}": c for n, c in settings.models_v3.items()}}
    if args.command == "models":
        for name, cid in offered.items():
            print(f"{name:<12} {cid:<24} {store.status(cid)}", file=out)
        return 0
    if args.name not in offered:
        raise accounts.AccountError(f"This server offers no model {args.name!r}; it offers {', '.join(offered)}.")
    path = store.download(
        offered[args.name],
        progress=lambda done, total: print(
            f"\r{done * 100 // max(total or 1, 1)}%", end="", file=sys.stderr, flush=True
        ),
    )
    print(f"\n{args.name}: {path}", file=out)
    return 0


def run(args, db, out=sys.stdout, settings=None) -> int:
    cmd = args.command
    if cmd in ("models", "download-model"):
        return _models(settings, args, out)
    if cmd == "reconcile":
        with db.transaction(readonly=True) as tx:
            bad = accounts.reconcile(tx)
            users = tx.one("SELECT COUNT(*) AS n FROM users")["n"]
            total = tx.one("SELECT COALESCE(SUM(delta), 0) AS s FROM ledger")["s"]
        if bad:
            for name, balance, ledger_sum in bad:
                print(f"MISMATCH {name}: balance {balance}, ledger sum {ledger_sum}", file=out)
            return 1
        print(f"OK: {users} user(s), every balance equals its ledger ({int(total)} tokens in all).", file=out)
        return 0
    with db.transaction() as tx:
        if cmd == "webhooks":
            for e in outbox.listing(tx, args.status, args.limit):
                print(
                    f"{e['id']:<42} {e['status']:<9} attempts {e['attempts']:<2} {e['event_type']:<18} "
                    f"{e['url']}  {e['last_error'] or ''}",
                    file=out,
                )
        elif cmd == "redeliver":
            if not args.ids and not args.failed:
                raise accounts.AccountError("Name the events to redeliver (msg_...), or give --failed.")
            count = outbox.redeliver(tx, args.ids, all_failed=args.failed)
            print(f"Queued {count} event(s) for delivery.", file=out)
        elif cmd == "create-user":
            accounts.create_user(tx, args.name, args.tokens)
            print(f"Created user {args.name} with {args.tokens} tokens.", file=out)
        elif cmd == "create-key":
            key = accounts.create_key(tx, accounts.user_id(tx, args.name))
            print(key, file=out)
            print(f"(the API key of {args.name}: store it now, it is not shown again)", file=sys.stderr)
        elif cmd == "revoke-key":
            if not accounts.revoke_key(tx, args.prefix):
                raise accounts.AccountError(f"No active key starts with {args.prefix!r}.")
            print(f"Revoked {args.prefix}.", file=out)
        elif cmd == "grant":
            new = accounts.grant(tx, accounts.user_id(tx, args.name), args.tokens, args.note)
            print(f"{args.name}: {args.tokens:+d} tokens, balance {new}.", file=out)
        elif cmd == "balance":
            print(accounts.balance(tx, accounts.user_id(tx, args.name)), file=out)
        elif cmd == "ledger":
            uid = accounts.user_id(tx, args.name) if args.name else None
            for e in accounts.ledger(tx, uid, args.limit):
                print(
                    f"{e['id']:>6} {iso(e['created_at'])} {e['user_name']:<16} {e['kind']:<7} {e['delta']:>+7} "
                    f"-> {e['balance_after']:>7}  {e['artwork_id'] or ''} {e['note']}",
                    file=out,
                )
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    settings = settings_or_exit(args.config)
    db = open_database(settings.database)
    try:
        return run(args, db, settings=settings)
    except (accounts.AccountError, FathomError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())
