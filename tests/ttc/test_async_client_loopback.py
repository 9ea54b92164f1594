"""AsyncTTCClient over a real loopback socket against the fake centre: four tasks share one
token, a batch reports per item, and an expired token is refreshed once for all of them."""

from __future__ import annotations

import asyncio

from engine_bridge.facts import Endpoint
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.ttc import AsyncTTCClient

from .test_client_against_fake import APP_ID, CLIENT_ID, CLIENT_SECRET, first_todo


def test_async_client_over_loopback_shares_one_token_and_refreshes_once() -> None:
    fake = FakeCenter(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, app_id=APP_ID)

    async def scenario(url: str) -> None:
        async with AsyncTTCClient(
            url, app_id=APP_ID, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        ) as client:
            created = await asyncio.gather(
                *(client.add_transaction([first_todo(f"A-{n}", ["T001"])]) for n in range(4))
            )
            assert all(r.all_ok for r in created)
            assert fake.token_requests == 1
            mixed = await client.send(
                Endpoint.TASK_HANDLE,
                [
                    {"previousTaskId": "A-0", "handler": "T001", "status": "none"},
                    {"previousTaskId": "missing", "handler": "T001", "status": "none"},
                ],
            )
            assert [(i.task_id, i.ok, i.code) for i in mixed.items] == [
                ("A-0", True, None),
                ("missing", False, 2004),
            ]
            fake.expire_tokens()
            handled = await asyncio.gather(
                *(
                    client.send(
                        Endpoint.TASK_HANDLE,
                        [{"previousTaskId": f"A-{n}", "handler": "T001", "status": "none"}],
                    )
                    for n in range(1, 4)
                )
            )
            assert all(r.all_ok for r in handled)
            assert fake.token_requests == 2

    with fake.serve() as server:
        asyncio.run(scenario(server.url))
    assert fake.open_todos() == {}
