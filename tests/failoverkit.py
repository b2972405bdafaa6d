"""A committer process for the Cluster failover tests.

    python tests/failoverkit.py URL WORKER OUT STOP RUNTIME [RUNTIME ...]

Opens the store at URL, then commits a boundary to each runtime in turn
(one run per runtime, commit ids ``WORKER:RUNTIME:N``) until the file STOP
exists. A commit that fails is retried with the same commit id, as a worker
does after an unknown outcome, until it is acknowledged. Every
acknowledged commit is one JSON line in OUT; so is every failure seen,
with its type and the whole cause chain, and a final summary line. Any
exception other than ``RuntimeStoreError`` ends the process with status 3.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from redis_store import RunApplyBoundary, RunId, RuntimeStoreError, SessionDelta, open_store
from sessions import session_json

#: Give up on one commit after this long (far beyond any failover here).
COMMIT_DEADLINE = 120.0


def _chain(exc: BaseException) -> list[str]:
    names = []
    while exc is not None and len(names) < 10:
        names.append(type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    return names


async def main(url: str, worker: str, out_path: str, stop_path: str, runtimes: list[str]) -> int:
    snapshot = SessionDelta(session_json(1))
    runs = {rid: RunId.new() for rid in runtimes}
    with open(out_path, "a", buffering=1) as out:
        async with open_store(url) as store:
            n = 0
            while not os.path.exists(stop_path):
                for rid in runtimes:
                    commit_id = f"{worker}:{rid}:{n}"
                    boundary = RunApplyBoundary.RUN_START if n == 0 else RunApplyBoundary.RUN_CHECKPOINT
                    started = time.monotonic()
                    while True:
                        try:
                            receipt = await store.commit_session_boundary(
                                rid, snapshot, runs[rid], boundary, [], [], commit_id=commit_id)
                            break
                        except RuntimeStoreError as exc:
                            out.write(json.dumps({"failure": str(exc)[:300], "chain": _chain(exc), "t": time.time()}) + "\n")
                            if time.monotonic() - started > COMMIT_DEADLINE:
                                out.write(json.dumps({"gave_up": commit_id}) + "\n")
                                return 2
                            await asyncio.sleep(0.05)
                        except Exception as exc:  # noqa: BLE001 - the store promised this never happens
                            out.write(json.dumps({"escaped": repr(exc)[:300], "chain": _chain(exc)}) + "\n")
                            return 3
                    out.write(json.dumps({
                        "runtime": rid, "run": str(runs[rid]), "sequence": receipt.sequence,
                        "commit_id": commit_id, "receipt": receipt.to_json(), "t": time.time(),
                    }) + "\n")
                n += 1
            out.write(json.dumps({"done": n}) + "\n")
    return 0


if __name__ == "__main__":
    url, worker, out_path, stop_path, *rids = sys.argv[1:]
    sys.exit(asyncio.run(main(url, worker, out_path, stop_path, rids)))
