"""`python -m django create_bench_key`: create one API key and print it (the only output)."""

from typing import Any

from django.core.management.base import BaseCommand  # type: ignore[import-untyped]
from rest_framework_api_key.models import APIKey


class Command(BaseCommand):  # type: ignore[misc]
    help = "Create one API key for the benchmark and print it."

    def handle(self, *args: Any, **options: Any) -> None:
        _, key = APIKey.objects.create_key(name="bench")
        self.stdout.write(key)
