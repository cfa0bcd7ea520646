async def test_alpha_items_roundtrip(main_plugins, app_client):
    async with app_client(enabled_plugins="alpha,beta") as client:
        created = await client.post("/api/v1/alpha/items", json={"name": "first"})
        assert created.status_code == 201, created.text
        item = created.json()
        assert item["id"].startswith("alp_")
        got = await client.get(f"/api/v1/alpha/items/{item['id']}")
        assert got.json()["name"] == "first"
        events = await client.get("/api/v1/beta/events")
        assert events.json() == {"events": [{"item_id": item["id"], "name": "first"}]}
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
