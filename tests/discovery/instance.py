"""An instance for the discovery tests: ``python -m tests.discovery.instance <service flags>``.

The benchmark's mesh server (bench/servers.py): the real ``InventoryServicer`` over an
in-memory stock, served by ``run_service`` as ``inventory``, so it registers, serves mTLS
and answers with its ``served-by`` trailer like any service, without a broker or database.
"""

from __future__ import annotations

import sys

from bench.servers import serve_mesh

if __name__ == "__main__":
    serve_mesh(False, "inventory", sys.argv[1:])
