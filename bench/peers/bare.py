"""The ceiling: a FastAPI route answering a verify request with a constant body.

It runs on the same stack and server as Llavero and receives the very same request, so
Llavero's throughput divided by this one is the share left after Llavero's own work.
"""

from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()
_BODY = b'{"valid":true,"code":"VALID"}'


@app.post("/v1/keys:verify")
async def verify() -> Response:
    return Response(_BODY, media_type="application/json")
