"""``GET /metrics`` in the Prometheus text format, read from the database so that every API process
answers for the whole deployment (queue, durations, webhook backlog, money), whichever one is scraped."""

from . import jobs

DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600)


def _line(name, value, **labels):
    shown = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{shown}}} {value}" if shown else f"{name} {value}"


def render(tx) -> str:
    out = []

    def metric(name, kind, help_text, samples):
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(samples)

    counts = {r["status"]: r["n"] for r in tx.all("SELECT status, COUNT(*) AS n FROM artworks GROUP BY status")}
    metric(
        "fathom_artworks",
        "gauge",
        "Artworks by status (starting = the queue).",
        [_line("fathom_artworks", counts.get(s, 0), status=s) for s in ("starting", "processing", *jobs.FINAL)],
    )
    oldest = tx.one("SELECT MIN(created_at) AS t FROM artworks WHERE status = 'starting'")["t"]
    metric(
        "fathom_queue_oldest_created_seconds",
        "gauge",
        "Creation time (Unix) of the oldest waiting job; 0 if none.",
        [_line("fathom_queue_oldest_created_seconds", oldest or 0)],
    )
    seconds = (
        "EXTRACT(EPOCH FROM finished_at - started_at)"
        if tx.dialect.name == "postgresql"
        else "(finished_at - started_at)"
    )
    cases = ", ".join(f"SUM(CASE WHEN {seconds} <= {b} THEN 1 ELSE 0 END) AS le_{b}" for b in DURATION_BUCKETS)
    row = tx.one(
        f"SELECT COUNT(*) AS n, COALESCE(SUM({seconds}), 0) AS total, {cases} "
        f"FROM artworks WHERE status = 'succeeded' AND started_at IS NOT NULL"
    )
    metric(
        "fathom_job_duration_seconds",
        "histogram",
        "From first claim to success, succeeded jobs.",
        [
            *(_line("fathom_job_duration_seconds_bucket", int(row[f"le_{b}"] or 0), le=b) for b in DURATION_BUCKETS),
            _line("fathom_job_duration_seconds_bucket", row["n"], le="+Inf"),
            _line("fathom_job_duration_seconds_sum", round(float(row["total"]), 3)),
            _line("fathom_job_duration_seconds_count", row["n"]),
        ],
    )
    hooks = {r["status"]: r["n"] for r in tx.all("SELECT status, COUNT(*) AS n FROM webhook_events GROUP BY status")}
    metric(
        "fathom_webhook_events",
        "gauge",
        "Webhook events by state (pending = the backlog).",
        [_line("fathom_webhook_events", hooks.get(s, 0), status=s) for s in ("pending", "delivered", "failed")],
    )
    money = {
        r["kind"]: r
        for r in tx.all("SELECT kind, COUNT(*) AS n, COALESCE(SUM(delta), 0) AS tokens FROM ledger GROUP BY kind")
    }
    metric(
        "fathom_ledger_entries_total",
        "counter",
        "Ledger entries by kind (charge, refund, grant, adjust).",
        [
            _line("fathom_ledger_entries_total", money[k]["n"] if k in money else 0, kind=k)
            for k in ("charge", "refund", "grant", "adjust")
        ],
    )
    metric(
        "fathom_ledger_tokens_total",
        "counter",
        "Tokens moved by kind (charges are negative).",
        [
            _line("fathom_ledger_tokens_total", int(money[k]["tokens"]) if k in money else 0, kind=k)
            for k in ("charge", "refund", "grant", "adjust")
        ],
    )
    alive = tx.one("SELECT COUNT(*) AS n, COALESCE(SUM(threads), 0) AS t FROM processes")
    metric(
        "fathom_processes",
        "gauge",
        "Server processes registered, and their job threads.",
        [_line("fathom_processes", alive["n"]), _line("fathom_job_threads", alive["t"])],
    )
    return "\n".join(out) + "\n"
