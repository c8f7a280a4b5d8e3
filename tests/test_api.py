"""The REST API end to end in process: projects, keys, lifecycle, lookup, verify, audit, paging,
`Cache-Control: no-store`, and the interactive docs served without any CDN."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_docs_and_redoc_load_only_local_assets(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*["']([^"']+)["']""", response.text)
        assert urls, page
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url}"
            assert client.get(url).status_code == 200, url
        assert "http://" not in response.text
        assert "https://" not in response.text
