"""Users, API keys and tokens. Every balance change goes through :func:`apply` so that it is a
ledger row and a balance update in the caller's transaction, never one without the other."""

import hashlib
import secrets
import time
from base64 import b64encode
from dataclasses import dataclass

KEY_PREFIX = "fth_"
SHOWN_PREFIX = 12  # characters of a key kept in clear, so a user can tell keys apart


class AccountError(Exception):
    """A user or key problem the admin CLI reports as it is."""


class InsufficientTokens(Exception):
    def __init__(self, needed: int, balance: int):
        self.needed, self.balance = needed, balance
        self.shortfall = needed - balance
        super().__init__(f"needs {needed} tokens, balance {balance}")


@dataclass(frozen=True)
class Caller:
    user_id: int
    name: str
    key_prefix: str
    webhook_secret: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_user(tx, name: str, tokens: int = 0) -> int:
    if tx.one("SELECT id FROM users WHERE name = ?", (name,)):
        raise AccountError(f"A user named {name!r} exists already.")
    secret = "whsec_" + b64encode(secrets.token_bytes(32)).decode("ascii")
    row = tx.one(
        "INSERT INTO users (name, webhook_secret, created_at) VALUES (?, ?, {ts}) RETURNING id",
        (name, secret, time.time()),
    )
    tx.execute("INSERT INTO balances (user_id, tokens) VALUES (?, 0)", (row["id"],))
    if tokens:
        apply(tx, row["id"], tokens, "grant", note="initial grant")
    return row["id"]


def user_id(tx, name: str) -> int:
    row = tx.one("SELECT id FROM users WHERE name = ?", (name,))
    if row is None:
        raise AccountError(f"No user named {name!r}: create it with `python -m server.admin create-user {name}`.")
    return row["id"]


def create_key(tx, uid: int) -> str:
    """A new API key for the user. Only its hash is stored: the key is shown this once."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    tx.execute(
        "INSERT INTO api_keys (user_id, prefix, key_hash, created_at) VALUES (?, ?, ?, {ts})",
        (uid, key[:SHOWN_PREFIX], hash_key(key), time.time()),
    )
    return key


def revoke_key(tx, prefix: str) -> int:
    return tx.execute(
        "UPDATE api_keys SET revoked_at = {ts} WHERE prefix = ? AND revoked_at IS NULL", (time.time(), prefix)
    )


def caller_for_key(tx, key: str):
    row = tx.one(
        "SELECT u.id, u.name, u.webhook_secret, k.prefix FROM api_keys k JOIN users u ON u.id = k.user_id "
        "WHERE k.key_hash = ? AND k.revoked_at IS NULL",
        (hash_key(key),),
    )
    return None if row is None else Caller(row["id"], row["name"], row["prefix"], row["webhook_secret"])


def balance(tx, uid: int) -> int:
    row = tx.one("SELECT tokens FROM balances WHERE user_id = ?", (uid,))
    return 0 if row is None else row["tokens"]


def apply(tx, uid: int, delta: int, kind: str, artwork_id=None, note: str = ""):
    """Change a balance by ``delta`` with its ledger row. Returns the new balance, or None when
    this (artwork, kind) row exists already (a refund applied twice is a no-op). A debit the
    balance cannot cover raises InsufficientTokens and changes nothing."""
    if delta < 0:
        row = tx.one(
            "UPDATE balances SET tokens = tokens + ? WHERE user_id = ? AND tokens >= ? RETURNING tokens",
            (delta, uid, -delta),
        )
        if row is None:
            raise InsufficientTokens(-delta, balance(tx, uid))
    if artwork_id is not None:
        # The unique (artwork_id, kind) row goes first: if it exists, nothing else happens.
        inserted = tx.one(
            "INSERT INTO ledger (user_id, delta, kind, artwork_id, note, balance_after, created_at) "
            "VALUES (?, ?, ?, ?, ?, 0, {ts}) ON CONFLICT (artwork_id, kind) DO NOTHING RETURNING id",
            (uid, delta, kind, artwork_id, note, time.time()),
        )
        if inserted is None:
            if delta < 0:
                raise RuntimeError(f"artwork {artwork_id} already has a {kind} row")  # rolls the debit back
            return None
        entry = inserted["id"]
    else:
        entry = tx.one(
            "INSERT INTO ledger (user_id, delta, kind, note, balance_after, created_at) "
            "VALUES (?, ?, ?, ?, 0, {ts}) RETURNING id",
            (uid, delta, kind, note, time.time()),
        )["id"]
    if delta >= 0:
        new = tx.one("UPDATE balances SET tokens = tokens + ? WHERE user_id = ? RETURNING tokens", (delta, uid))[
            "tokens"
        ]
    else:
        new = row["tokens"]
    tx.execute("UPDATE ledger SET balance_after = ? WHERE id = ?", (new, entry))
    return new


def grant(tx, uid: int, tokens: int, note: str = "") -> int:
    if tokens == 0:
        raise AccountError("A grant of 0 tokens changes nothing: give a positive (or negative, to correct) amount.")
    return apply(tx, uid, tokens, "grant" if tokens > 0 else "adjust", note=note)


def ledger(tx, uid=None, limit: int = 50) -> list:
    where, params = ("WHERE l.user_id = ?", (uid,)) if uid is not None else ("", ())
    return tx.all(
        f"SELECT l.id, u.name AS user_name, l.delta, l.kind, l.artwork_id, l.note, l.balance_after, l.created_at "
        f"FROM ledger l JOIN users u ON u.id = l.user_id {where} ORDER BY l.id DESC LIMIT ?",
        (*params, limit),
    )


def reconcile(tx) -> list:
    """Users whose balance differs from the sum of their ledger rows: [(name, balance, ledger_sum)]."""
    rows = tx.all(
        "SELECT u.name, b.tokens, COALESCE((SELECT SUM(l.delta) FROM ledger l WHERE l.user_id = u.id), 0) AS total "
        "FROM users u LEFT JOIN balances b ON b.user_id = u.id ORDER BY u.id"
    )
    return [(r["name"], r["tokens"], int(r["total"])) for r in rows if r["tokens"] is None or r["tokens"] != r["total"]]
