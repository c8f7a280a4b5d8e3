"""A stricter ceiling: a plain ASGI app that reads the request body and answers a constant.

No framework at all, like Llavero's verify fast path, and it reads the body as every verify
must: what the server itself allows for this request, so Llavero divided by it is the share of
the server left after all of Llavero's own work (parsing, auth, verify, encoding).
"""

from starlette.types import Receive, Scope, Send

_BODY = b'{"valid":true,"code":"VALID"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more_body = True
    while more_body:
        more_body = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
