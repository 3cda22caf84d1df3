"""Where results (and the picture of a job being processed) are kept, behind one interface:

    LocalStorage(folder)     files under <data_dir>/results/<artwork id>/ (the default; with several
                             machines the folder must be shared storage)
    DatabaseStorage(db)      rows of the ``stored_files`` table, for deployments without a shared
                             filesystem (every machine already reaches the database)

    storage.put(artwork_id, name, data)    storage.get(artwork_id, name) -> bytes | None
    storage.delete(artwork_id, names=None) (None: everything of the artwork)
Results are kept ``result_retention_hours`` after the artwork finished (server.jobs.expire_results).
"""

import os
import shutil
import time
import uuid
from pathlib import Path

INPUT = "input"  # the picture, once a worker has taken it out of the queue's table


class LocalStorage:
    def __init__(self, folder):
        self.folder = Path(folder)

    def _path(self, artwork_id, name):
        return self.folder / artwork_id / name

    def put(self, artwork_id: str, name: str, data: bytes):
        path = self._path(artwork_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers see the whole file or none

    def get(self, artwork_id: str, name: str):
        try:
            return self._path(artwork_id, name).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def delete(self, artwork_id: str, names=None):
        if names is None:
            shutil.rmtree(self.folder / artwork_id, ignore_errors=True)
        else:
            for name in names:
                self._path(artwork_id, name).unlink(missing_ok=True)


class DatabaseStorage:
    def __init__(self, db):
        self.db = db

    def put(self, artwork_id: str, name: str, data: bytes):
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM stored_files WHERE artwork_id = ? AND name = ?", (artwork_id, name))
            tx.execute(
                "INSERT INTO stored_files (artwork_id, name, data, created_at) VALUES (?, ?, ?, {ts})",
                (artwork_id, name, data, time.time()),
            )

    def get(self, artwork_id: str, name: str):
        with self.db.transaction(readonly=True) as tx:
            row = tx.one("SELECT data FROM stored_files WHERE artwork_id = ? AND name = ?", (artwork_id, name))
        return None if row is None else bytes(row["data"])

    def delete(self, artwork_id: str, names=None):
        with self.db.transaction() as tx:
            if names is None:
                tx.execute("DELETE FROM stored_files WHERE artwork_id = ?", (artwork_id,))
            for name in names or ():
                tx.execute("DELETE FROM stored_files WHERE artwork_id = ? AND name = ?", (artwork_id, name))


def open_storage(settings, db):
    if settings.storage == "database":
        return DatabaseStorage(db)
    return LocalStorage(settings.results_dir)
