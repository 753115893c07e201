"""Workers never load cryptography or pysyncobj: what a worker needs of TLS is in `shoal.tls`
(standard library), and its key and CSR are made in a short-lived child."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shoal.manager import ca

SRC = Path(__file__).resolve().parents[2] / "agent" / "src"

PROBE = """
import json, sys
import shoal.daemon
from shoal import tls
key_pem, csr_pem = tls.new_key_and_csr()
names = ("cryptography", "pysyncobj", "shoal.manager.ca", "shoal.manager.manager")
heavy = sorted(m for m in names if m in sys.modules)
print(json.dumps({"heavy": heavy, "key": key_pem, "csr": csr_pem}))
"""


def test_worker_side_imports_stay_lean_and_the_csr_is_usable() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={"PYTHONPATH": str(SRC)}, capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out)
    assert seen["heavy"] == []
    assert "PRIVATE KEY" in seen["key"]
    root = ca.RootCA.create()
    cert_pem = root.issue(seen["csr"], "node1", "worker", "cluster1")
    assert root.verify(cert_pem).node_id == "node1"
    # the key made in the child belongs to the certificate issued for its CSR
    ca.server_context(cert_pem, seen["key"], root.cert_pem)
