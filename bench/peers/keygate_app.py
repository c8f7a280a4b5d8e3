"""fastapi-keygate used as its README shows: `Depends(gate.require)` on a route.

Usage rows are batched (`usage_batch_size=100`, the README's advice for busy apps) and the
benchmark key has no rate limit, so every answer is a 200; both choices favour the peer.
`python -m bench.peers.keygate_app` creates the key and prints it.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from keygate import ApiKey, KeyGate

app = FastAPI()
gate = KeyGate(
    app,
    db_url=f"sqlite:///{os.environ.get('BENCH_KEYGATE_DB', 'keygate-bench.sqlite3')}",
    default_per_minute=None,
    usage_batch_size=100,
)


@app.get("/ok")
def ok(key: Annotated[ApiKey, Depends(gate.require)]) -> dict[str, bool]:
    return {"ok": True}


if __name__ == "__main__":
    print(gate.create_key("bench").key)
