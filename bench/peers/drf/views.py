from rest_framework.decorators import api_view  # type: ignore[import-untyped]
from rest_framework.request import Request  # type: ignore[import-untyped]
from rest_framework.response import Response  # type: ignore[import-untyped]


@api_view(["GET"])  # type: ignore[untyped-decorator]
def ok(request: Request) -> Response:
    return Response({"ok": True})
