from __future__ import annotations

from tests.plugins.upload.conftest import PNG, UPLOADS, UploadApp


async def test_upload_round_trip(uploads: UploadApp) -> None:
    alice = await uploads.user()
    ready = await uploads.upload(alice, PNG, filename="holiday.png")
    assert ready["status"] == "ready"
    shown = await uploads.client.get(f"{UPLOADS}/{ready['id']}", headers=alice)
    assert shown.status_code == 200, shown.text
    downloaded = await uploads.download(shown.json()["download_url"])
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == PNG
    assert downloaded.headers["content-type"] == "image/png"
    assert "attachment" in downloaded.headers["content-disposition"]
    assert "holiday.png" in downloaded.headers["content-disposition"]
