"""The correctness checks every run ends with (docs/performance.md, "Invariants").

* ``audit_ledger``: the real ``pesarail audit-ledger --json`` against the bench database
  (entries sum to zero per currency, balances = postings, no forbidden negative balance,
  holds, one credit per provider payment, guards installed);
* ``no_negative_wallet``: an explicit query, besides the audit's own check;
* payment checks (S1/S2/S4): each succeeded payment credited exactly once, nothing
  pending past the reconciliation window, provider pushes == intents created.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench import infra


def audit_ledger() -> dict[str, Any]:
    env = infra.bench_env(infra.REPO / ".pesarail", "http://127.0.0.1:8000")
    proc = subprocess.run([infra.venv_bin("pesarail"), "audit-ledger", "--json"], env=env,
                          capture_output=True, text=True, cwd=str(infra.REPO), timeout=300)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return {"ok": False, "exit_code": proc.returncode, "stderr": proc.stderr[-2000:]}
    failed = [c["name"] for c in report.get("checks", []) if not c.get("ok")]
    return {"ok": proc.returncode == 0 and report.get("ok") is True, "failed": failed,
            "checks": len(report.get("checks", [])), "totals": report.get("totals")}


def no_negative_wallet() -> dict[str, Any]:
    count = int(infra.psql(
        "SELECT count(*) FROM ledger_account WHERE kind = 'customer_wallet' "
        "AND balance - held < 0", db=infra.BENCH_DB))
    return {"ok": count == 0, "negative_wallets": count}


def ledger_checks() -> dict[str, Any]:
    return {"audit_ledger": audit_ledger(), "no_negative_wallet": no_negative_wallet()}
