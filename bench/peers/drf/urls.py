from django.urls import path  # type: ignore[import-untyped]

from bench.peers.drf.views import ok

urlpatterns = [path("ok", ok)]
