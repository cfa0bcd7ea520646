"""Who may see and touch an upload, over HTTP: another user's upload answers exactly like
one that does not exist, at every route; a signed URL works for the one upload it was
signed for; every other route needs a principal; a user's list shows their own uploads,
page by page and by status; admins may list anyone's; a deleted upload is gone for all."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from core.db.ids import new_id
from tests.plugins.upload.conftest import (
    PDF,
    PNG,
    SENT,
    UPLOADS,
    UploadApp,
    UploadAppFactory,
    complete,
    granted,
    key_of,
)
from tests.support.problems import assert_problem

# The routes that act for a principal on one upload, as (method, path template).
ONE_UPLOAD_ROUTES = [
    ("GET", UPLOADS + "/{}"),
    ("POST", UPLOADS + "/{}/complete"),
    ("DELETE", UPLOADS + "/{}"),
]
MALFORMED_IDS = [
    "nope",
    "upl_123",
    new_id("upl").lower(),  # a ULID is upper-case
    new_id("upl") + "0",
    quote("x' OR '1'='1", safe=""),
]


def unnamed(problem: dict[str, Any], upload_id: str) -> dict[str, Any]:
    """A problem body without what names this request: the id in the text, the path and
    the request id. Two of them are equal when a client cannot tell the cases apart."""
    named = unquote(upload_id)
    return {
        key: value.replace(named, "<id>") if isinstance(value, str) else value
        for key, value in problem.items()
        if key not in ("instance", "request_id")
    }


async def listed(uploads: UploadApp, headers: dict[str, str], **query: Any) -> list[str]:
    """The ids on the first page of `GET /uploads` with this query."""
    response = await uploads.client.get(UPLOADS, params=query, headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def every_page(uploads: UploadApp, headers: dict[str, str], **query: Any) -> list[list[str]]:
    """The ids of each page of `GET /uploads`, following `next_cursor` to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params = query | ({"cursor": cursor} if cursor is not None else {})
        response = await uploads.client.get(UPLOADS, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, pages  # a cursor that never ends


async def user_id(uploads: UploadApp, headers: dict[str, str]) -> str:
    me = await uploads.client.get("/api/v1/users/me", headers=headers)
    assert me.status_code == 200, me.text
    return str(me.json()["id"])


# -- another user's upload, an unknown or a malformed id -----------------------------------


async def test_another_users_upload_is_not_found_at_every_route(uploads: UploadApp) -> None:
    alice, bob = await uploads.user(), await uploads.user()
    ready = await uploads.upload(alice, PNG)
    sent = await granted(uploads, alice)  # pending with its bytes: anyone could complete it
    assert (await uploads.send(sent, PNG)).status_code in SENT
    pending_id = sent["upload"]["id"]
    stored = uploads.stored_keys()
    assert stored == sorted([key_of(ready), key_of(sent["upload"])])

    missing = new_id("upl")
    for method, path in ONE_UPLOAD_ROUTES:
        nothing = await uploads.client.request(method, path.format(missing), headers=bob)
        expected = unnamed(assert_problem(nothing, 404, "upload.not_found"), missing)
        for upload_id in (ready["id"], pending_id):
            response = await uploads.client.request(method, path.format(upload_id), headers=bob)
            problem = assert_problem(response, 404, "upload.not_found")
            assert unnamed(problem, upload_id) == expected, (method, path)

    # Alice's uploads are as she left them.
    assert uploads.stored_keys() == stored
    shown = await uploads.client.get(f"{UPLOADS}/{ready['id']}", headers=alice)
    assert (shown.status_code, shown.json()["status"]) == (200, "ready")
    assert (await uploads.download(shown.json()["download_url"])).content == PNG
    still = await uploads.client.get(f"{UPLOADS}/{pending_id}", headers=alice)
    assert (still.status_code, still.json()["status"]) == (200, "pending")
    assert (await complete(uploads, alice, pending_id)).json()["status"] == "ready"
    assert sorted(await listed(uploads, alice)) == sorted([ready["id"], pending_id])
    assert await listed(uploads, bob) == []


async def test_unknown_and_malformed_ids_are_not_found(upload_app: UploadAppFactory) -> None:
    async with upload_app("local") as uploads:
        alice = await uploads.user()
        mine = await uploads.upload(alice, PNG)
        unknown = [new_id("upl"), new_id("usr"), mine["owner_id"]]  # well-formed, no upload
        for upload_id in unknown + MALFORMED_IDS:
            for method, path in ONE_UPLOAD_ROUTES:
                response = await uploads.client.request(
                    method, path.format(upload_id), headers=alice
                )
                problem = assert_problem(response, 404, "upload.not_found")
                assert problem["detail"] == f"Upload {unquote(upload_id)} not found"
        assert await listed(uploads, alice) == [mine["id"]]
        assert uploads.stored_keys() == [key_of(mine)]


async def test_a_signed_url_is_for_its_own_upload_only(upload_app: UploadAppFactory) -> None:
    """Bob takes the URLs signed for his uploads and puts Alice's upload ids in them: the
    signature covers the id, so the URL is refused as any bad signature is (403), whether
    the id is another user's, unknown or malformed, and Alice's files are untouched."""
    async with upload_app("local") as uploads:
        alice, bob = await uploads.user(), await uploads.user()
        waiting = await granted(uploads, alice)  # nothing sent yet
        ready = await uploads.upload(alice, PNG)
        bobs_grant = await granted(uploads, bob)  # same size and type as Alice's
        bobs_file = await uploads.upload(bob, PDF, filename="b.pdf", content_type="application/pdf")
        shown = await uploads.client.get(f"{UPLOADS}/{bobs_file['id']}", headers=bob)
        bobs_download = shown.json()["download_url"]
        stored = uploads.stored_keys()
        forged = PNG[:-4] + b"EVIL"  # a PNG of the declared size: it would complete

        targets = [waiting["upload"]["id"], ready["id"], new_id("upl"), *MALFORMED_IDS]
        for target in targets:
            put_url = bobs_grant["url"].replace(bobs_grant["upload"]["id"], target)
            sent = await uploads.send(bobs_grant, forged, url=put_url)
            assert_problem(sent, 403, "upload.invalid_signature")
            get_url = bobs_download.replace(bobs_file["id"], target)
            fetched = await uploads.client.get(get_url)
            assert_problem(fetched, 403, "upload.invalid_signature")
            assert b"PNG" not in fetched.content

        assert (uploads.stored_keys(), uploads.leftovers()) == (stored, [])
        assert uploads.root is not None
        assert (uploads.root / key_of(ready)).read_bytes() == PNG
        assert not (uploads.root / key_of(waiting["upload"])).exists()
        # Alice's own URLs still work, and Bob's are still his.
        assert (await uploads.send(waiting, PNG)).status_code == 204
        assert (await complete(uploads, alice, waiting["upload"]["id"])).status_code == 200
        assert (uploads.root / key_of(waiting["upload"])).read_bytes() == PNG
        assert (await uploads.client.get(bobs_download)).content == PDF


async def test_the_s3_backend_serves_no_content_routes(upload_app: UploadAppFactory) -> None:
    async with upload_app("s3") as uploads:
        alice = await uploads.user()
        ready = await uploads.upload(alice, PNG)
        path = f"{UPLOADS}/{ready['id']}/content"
        assert_problem(await uploads.client.get(path), 404, "core.not_found")
        put = await uploads.client.put(path, content=PNG, headers={"Content-Type": "image/png"})
        assert_problem(put, 404, "core.not_found")
        assert uploads.stored_keys() == [key_of(ready)]


async def test_every_route_but_the_signed_ones_needs_a_principal(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("local") as uploads:
        alice = await uploads.user()
        ready = await uploads.upload(alice, PNG)
        pending = (await granted(uploads, alice))["upload"]
        create = {"filename": "a.png", "content_type": "image/png", "size": len(PNG)}
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("POST", UPLOADS, create),
            ("GET", UPLOADS, None),
            ("GET", f"{UPLOADS}/{ready['id']}", None),
            ("POST", f"{UPLOADS}/{pending['id']}/complete", None),
            ("DELETE", f"{UPLOADS}/{ready['id']}", None),
            ("DELETE", f"{UPLOADS}/{pending['id']}", None),
        ]
        anonymous: list[dict[str, str]] = [
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        ]
        for headers in anonymous:
            for method, path, body in calls:
                response = await uploads.client.request(method, path, json=body, headers=headers)
                assert_problem(response, 401, "core.unauthorized")
                assert response.headers["www-authenticate"] == "Bearer"

        rows = await uploads.rows("SELECT id, status, deleted_at FROM upload_file ORDER BY id")
        assert rows == sorted([(ready["id"], "ready", None), (pending["id"], "pending", None)])
        assert uploads.stored_keys() == [key_of(ready)]
        # The signed URL is the credential of the content routes: no Authorization needed.
        shown = await uploads.client.get(f"{UPLOADS}/{ready['id']}", headers=alice)
        assert (await uploads.client.get(shown.json()["download_url"])).content == PNG


# -- listing --------------------------------------------------------------------------------


async def test_the_list_shows_only_the_callers_uploads_by_status(uploads: UploadApp) -> None:
    alice, bob = await uploads.user(), await uploads.user()
    ready = await uploads.upload(alice, PNG, filename="ready.png")
    pending = (await granted(uploads, alice, filename="pending.png"))["upload"]
    bobs_ready = await uploads.upload(bob, PNG)
    bobs_pending = (await granted(uploads, bob))["upload"]

    response = await uploads.client.get(UPLOADS, headers=alice)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    items = {item["id"]: item for item in page["items"]}
    assert list(items) == sorted([ready["id"], pending["id"]], reverse=True)  # newest first
    assert {item["owner_id"] for item in items.values()} == {ready["owner_id"]}
    assert items[ready["id"]]["status"] == "ready"
    assert items[ready["id"]]["filename"] == "ready.png"
    assert items[pending["id"]]["status"] == "pending"
    assert all(item["download_url"] is None for item in items.values())  # GET one for that

    assert await listed(uploads, alice, status="ready") == [ready["id"]]
    assert await listed(uploads, alice, status="pending") == [pending["id"]]
    assert await listed(uploads, bob) == sorted(
        [bobs_ready["id"], bobs_pending["id"]], reverse=True
    )
    assert await listed(uploads, bob, status="ready") == [bobs_ready["id"]]
    assert await listed(uploads, bob, status="pending") == [bobs_pending["id"]]
    assert await listed(uploads, await uploads.user()) == []


async def test_cursor_paging_walks_every_upload_once(upload_app: UploadAppFactory) -> None:
    async with upload_app("local") as uploads:
        alice, bob = await uploads.user(), await uploads.user()
        ready: list[str] = []
        pending: list[str] = []
        for number in range(7):
            if number % 2:
                ready.append((await uploads.upload(alice, PNG))["id"])
            else:
                pending.append((await granted(uploads, alice))["upload"]["id"])
            await granted(uploads, bob)  # interleaved with Alice's, never listed for her
        newest_first = sorted(ready + pending, reverse=True)

        pages = await every_page(uploads, alice, limit=3)
        assert [len(page) for page in pages] == [3, 3, 1]
        assert [upload_id for page in pages for upload_id in page] == newest_first
        # A last page that is exactly full has no cursor after it.
        assert await every_page(uploads, alice, limit=7) == [newest_first]
        assert await every_page(uploads, alice, limit=100) == [newest_first]

        by_status = {"ready": sorted(ready, reverse=True), "pending": sorted(pending, reverse=True)}
        for status, expected in by_status.items():
            pages = await every_page(uploads, alice, limit=2, status=status)
            assert [upload_id for page in pages for upload_id in page] == expected
            assert [len(page) for page in pages[:-1]] == [2] * (len(pages) - 1)


async def test_malformed_list_queries_are_422_naming_the_field(
    upload_app: UploadAppFactory,
) -> None:
    queries: list[tuple[dict[str, str], str]] = [
        ({"status": "deleted"}, "status"),  # a state of the table, never listed
        ({"status": "bogus"}, "status"),
        ({"status": "READY"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "nope"}, "cursor"),
        ({"owner_id": "nope"}, "owner_id"),
    ]
    async with upload_app("local") as uploads:
        alice = await uploads.user()
        await uploads.upload(alice, PNG)
        for query, field in queries:
            response = await uploads.client.get(UPLOADS, params=query, headers=alice)
            problem = assert_problem(response, 422, "core.validation_error")
            assert [error["field"] for error in problem["errors"]] == [field], query
            assert "items" not in problem


async def test_admins_may_list_another_users_uploads_and_users_may_not(
    upload_app: UploadAppFactory,
) -> None:
    async with upload_app("local") as uploads:
        alice, bob, admin = await uploads.user(), await uploads.user(), await uploads.admin()
        alice_id, bob_id = await user_id(uploads, alice), await user_id(uploads, bob)
        ready = await uploads.upload(alice, PNG)
        pending = (await granted(uploads, alice))["upload"]
        bobs = await uploads.upload(bob, PNG)
        alices = sorted([ready["id"], pending["id"]], reverse=True)

        assert await listed(uploads, admin, owner_id=alice_id) == alices
        assert await listed(uploads, admin, owner_id=alice_id, status="ready") == [ready["id"]]
        assert await every_page(uploads, admin, owner_id=alice_id, limit=1) == [
            [alices[0]],
            [alices[1]],
        ]
        assert await listed(uploads, admin, owner_id=bob_id) == [bobs["id"]]
        assert await listed(uploads, admin) == []  # without owner_id: the admin's own
        assert await listed(uploads, admin, owner_id=new_id("usr")) == []

        for query in ({"owner_id": alice_id}, {"owner_id": alice_id, "status": "ready"}):
            refused = await uploads.client.get(UPLOADS, params=query, headers=bob)
            problem = assert_problem(refused, 403, "upload.owner_forbidden")
            assert "items" not in problem
            assert ready["id"] not in refused.text
        assert await listed(uploads, bob, owner_id=bob_id) == [bobs["id"]]  # naming oneself

        # An admin may read another user's upload, but only its owner completes it.
        shown = await uploads.client.get(f"{UPLOADS}/{ready['id']}", headers=admin)
        assert (shown.status_code, shown.json()["owner_id"]) == (200, alice_id)
        assert (await uploads.download(shown.json()["download_url"])).content == PNG
        refused = await complete(uploads, admin, pending["id"])
        assert_problem(refused, 404, "upload.not_found")
        assert await listed(uploads, alice, status="pending") == [pending["id"]]


# -- deleted uploads ----------------------------------------------------------------------


async def test_a_deleted_upload_is_gone_for_its_owner_and_from_the_list(
    uploads: UploadApp,
) -> None:
    alice, admin = await uploads.user(), await uploads.admin()
    kept = await uploads.upload(alice, PNG)
    ready = await uploads.upload(alice, PNG)
    sent = await granted(uploads, alice)
    assert (await uploads.send(sent, PNG)).status_code in SENT
    deleted = [ready["id"], sent["upload"]["id"]]
    for upload_id in deleted:
        response = await uploads.client.delete(f"{UPLOADS}/{upload_id}", headers=alice)
        assert response.status_code == 204, response.text

    for upload_id in deleted:
        for method, path in ONE_UPLOAD_ROUTES:
            for headers in (alice, admin):
                response = await uploads.client.request(
                    method, path.format(upload_id), headers=headers
                )
                assert_problem(response, 404, "upload.not_found")
    assert await listed(uploads, alice) == [kept["id"]]
    assert await listed(uploads, alice, status="ready") == [kept["id"]]
    assert await listed(uploads, alice, status="pending") == []
    assert await listed(uploads, admin, owner_id=kept["owner_id"]) == [kept["id"]]
    assert uploads.stored_keys() == [key_of(kept)]
    if uploads.backend == "local":
        # The deleted upload's signed PUT URL is still correctly signed, but stores nothing.
        again = await uploads.send(sent, PNG)
        assert_problem(again, 404, "upload.not_found")
        assert (uploads.stored_keys(), uploads.leftovers()) == ([key_of(kept)], [])
