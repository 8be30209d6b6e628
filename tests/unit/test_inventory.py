"""The inventory service's servicer on an in-memory database: stock, reservations, paging."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshkit.database import Database
from meshkit.errors import FailedPrecondition, InvalidArgument, NotFound
from meshkit.settings import from_env
from services.inventory.app import DEFAULT_CATALOG, InventorySettings, load_catalog
from services.inventory.servicer import InventoryServicer
from services.inventory.store import SCHEMA, InventoryStore
from shop.inventory.v1 import inventory_pb2 as pb

CATALOG = {"SKU-A": 10, "SKU-B": 5, "SKU-C": 0}


@pytest.fixture
async def store() -> AsyncIterator[InventoryStore]:
    db = await Database.open(":memory:", SCHEMA)
    store = InventoryStore(db)
    await store.seed_if_empty(CATALOG)
    yield store
    await db.close()


@pytest.fixture
def inventory(store: InventoryStore) -> InventoryServicer:
    return InventoryServicer(store)


def fields(err: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in err.value.violations]


async def level(inventory: InventoryServicer, sku: str) -> tuple[int, int, int]:
    stock = (await inventory.GetStock(pb.GetStockRequest(sku=sku), None)).stock
    return stock.available, stock.reserved, stock.sold


def reserve(order_id: str, *items: tuple[str, int]) -> pb.ReserveStockRequest:
    return pb.ReserveStockRequest(
        order_id=order_id, items=[pb.StockQuantity(sku=s, quantity=q) for s, q in items]
    )


async def test_get_stock(inventory: InventoryServicer) -> None:
    stock = (await inventory.GetStock(pb.GetStockRequest(sku="SKU-A"), None)).stock
    assert (stock.sku, stock.available, stock.reserved, stock.sold) == ("SKU-A", 10, 0, 0)
    assert stock.update_time.seconds > 0
    with pytest.raises(NotFound):
        await inventory.GetStock(pb.GetStockRequest(sku="SKU-NOPE"), None)
    with pytest.raises(InvalidArgument) as err:
        await inventory.GetStock(pb.GetStockRequest(), None)
    assert fields(err) == ["sku"]


async def test_reserve_takes_stock_from_available(inventory: InventoryServicer) -> None:
    res = (
        await inventory.ReserveStock(reserve("o1", ("SKU-A", 3), ("SKU-B", 5)), None)
    ).reservation
    assert res.status == pb.RESERVATION_STATUS_RESERVED
    assert [(i.sku, i.quantity) for i in res.items] == [("SKU-A", 3), ("SKU-B", 5)]
    assert not res.short_skus
    assert await level(inventory, "SKU-A") == (7, 3, 0)
    assert await level(inventory, "SKU-B") == (0, 5, 0)


async def test_reserve_is_idempotent_per_order(inventory: InventoryServicer) -> None:
    first = (await inventory.ReserveStock(reserve("o1", ("SKU-A", 3)), None)).reservation
    again = (await inventory.ReserveStock(reserve("o1", ("SKU-A", 3)), None)).reservation
    other = (await inventory.ReserveStock(reserve("o1", ("SKU-B", 1)), None)).reservation
    assert again == first
    assert other == first  # the order's first answer stands
    assert await level(inventory, "SKU-A") == (7, 3, 0)
    assert await level(inventory, "SKU-B") == (5, 0, 0)


async def test_reserve_short_or_unknown_sku_rejects_and_changes_nothing(
    inventory: InventoryServicer,
) -> None:
    request = reserve("o1", ("SKU-A", 2), ("SKU-B", 6), ("SKU-NOPE", 1))
    res = (await inventory.ReserveStock(request, None)).reservation
    assert res.status == pb.RESERVATION_STATUS_REJECTED
    assert list(res.short_skus) == ["SKU-B", "SKU-NOPE"]
    assert await level(inventory, "SKU-A") == (10, 0, 0)
    assert await level(inventory, "SKU-B") == (5, 0, 0)
    # The rejection is the order's answer; releasing it is a no-op.
    again = (await inventory.ReserveStock(request, None)).reservation
    assert again == res
    released = await inventory.ReleaseStock(pb.ReleaseStockRequest(order_id="o1"), None)
    assert released.reservation.status == pb.RESERVATION_STATUS_REJECTED
    with pytest.raises(FailedPrecondition):
        await inventory.CommitStock(pb.CommitStockRequest(order_id="o1"), None)


async def test_reserve_validation_names_fields(inventory: InventoryServicer) -> None:
    with pytest.raises(InvalidArgument) as err:
        await inventory.ReserveStock(pb.ReserveStockRequest(), None)
    assert fields(err) == ["order_id", "items"]
    with pytest.raises(InvalidArgument) as err:
        await inventory.ReserveStock(
            reserve("o1", ("SKU-A", 0), ("", 1), ("SKU-A", 2), ("SKU-B", -1)), None
        )
    assert fields(err) == ["items[0].quantity", "items[1].sku", "items[2].sku", "items[3].quantity"]
    assert "repeats items[0].sku" in str(err.value)


async def test_release_gives_stock_back_once(inventory: InventoryServicer) -> None:
    await inventory.ReserveStock(reserve("o1", ("SKU-A", 4)), None)
    for _ in range(2):
        res = (
            await inventory.ReleaseStock(pb.ReleaseStockRequest(order_id="o1"), None)
        ).reservation
        assert res.status == pb.RESERVATION_STATUS_RELEASED
        assert await level(inventory, "SKU-A") == (10, 0, 0)
    with pytest.raises(FailedPrecondition):
        await inventory.CommitStock(pb.CommitStockRequest(order_id="o1"), None)
    with pytest.raises(NotFound):
        await inventory.ReleaseStock(pb.ReleaseStockRequest(order_id="unknown"), None)
    with pytest.raises(InvalidArgument) as err:
        await inventory.ReleaseStock(pb.ReleaseStockRequest(), None)
    assert fields(err) == ["order_id"]


async def test_commit_turns_reserved_into_sold_once(inventory: InventoryServicer) -> None:
    await inventory.ReserveStock(reserve("o1", ("SKU-A", 4)), None)
    for _ in range(2):
        res = (await inventory.CommitStock(pb.CommitStockRequest(order_id="o1"), None)).reservation
        assert res.status == pb.RESERVATION_STATUS_COMMITTED
        assert await level(inventory, "SKU-A") == (6, 0, 4)
    with pytest.raises(FailedPrecondition):
        await inventory.ReleaseStock(pb.ReleaseStockRequest(order_id="o1"), None)
    with pytest.raises(NotFound):
        await inventory.CommitStock(pb.CommitStockRequest(order_id="unknown"), None)


async def test_adjust_stock(inventory: InventoryServicer) -> None:
    stock = (await inventory.AdjustStock(pb.AdjustStockRequest(sku="SKU-A", delta=-4), None)).stock
    assert stock.available == 6
    stock = (await inventory.AdjustStock(pb.AdjustStockRequest(sku="SKU-NEW", delta=7), None)).stock
    assert (stock.sku, stock.available, stock.reserved, stock.sold) == ("SKU-NEW", 7, 0, 0)
    with pytest.raises(FailedPrecondition):
        await inventory.AdjustStock(pb.AdjustStockRequest(sku="SKU-A", delta=-7), None)
    assert await level(inventory, "SKU-A") == (6, 0, 0)
    with pytest.raises(NotFound):
        await inventory.AdjustStock(pb.AdjustStockRequest(sku="SKU-NOPE", delta=-1), None)
    with pytest.raises(InvalidArgument) as err:
        await inventory.AdjustStock(pb.AdjustStockRequest(), None)
    assert fields(err) == ["sku", "delta"]


async def test_only_adjust_changes_the_total_of_a_sku(inventory: InventoryServicer) -> None:
    async def total(sku: str) -> int:
        return sum(await level(inventory, sku))

    before = await total("SKU-A")
    await inventory.ReserveStock(reserve("o1", ("SKU-A", 2)), None)
    await inventory.ReserveStock(reserve("o2", ("SKU-A", 3)), None)
    await inventory.ReserveStock(reserve("o3", ("SKU-A", 9)), None)  # rejected
    await inventory.CommitStock(pb.CommitStockRequest(order_id="o1"), None)
    await inventory.ReleaseStock(pb.ReleaseStockRequest(order_id="o2"), None)
    assert await total("SKU-A") == before
    assert await level(inventory, "SKU-A") == (8, 0, 2)
    await inventory.AdjustStock(pb.AdjustStockRequest(sku="SKU-A", delta=5), None)
    assert await total("SKU-A") == before + 5


async def test_list_stock_pages_through_every_sku(
    inventory: InventoryServicer, store: InventoryStore
) -> None:
    for i in range(4):
        await store.adjust(f"SKU-Z{i}", 1)
    seen: list[str] = []
    token = ""
    for _ in range(10):
        page = await inventory.ListStock(pb.ListStockRequest(page_size=2, page_token=token), None)
        assert len(page.stock) <= 2
        seen += [s.sku for s in page.stock]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted([*CATALOG, "SKU-Z0", "SKU-Z1", "SKU-Z2", "SKU-Z3"])
    everything = await inventory.ListStock(pb.ListStockRequest(), None)
    assert [s.sku for s in everything.stock] == seen
    assert everything.next_page_token == ""


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListStockRequest(page_token="not a token"), "page_token"),
        (pb.ListStockRequest(page_token="eyJhZnRlciI6IDF9"), "page_token"),  # {"after": 1}
        (pb.ListStockRequest(page_size=-1), "page_size"),
    ],
)
async def test_list_stock_rejects_bad_paging(
    inventory: InventoryServicer, request_: pb.ListStockRequest, field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        await inventory.ListStock(request_, None)
    assert fields(err) == [field]


async def test_seed_only_fills_an_empty_table(store: InventoryStore) -> None:
    assert await store.seed_if_empty(DEFAULT_CATALOG) == 0
    db = await Database.open(":memory:", SCHEMA)
    try:
        fresh = InventoryStore(db)
        assert await fresh.seed_if_empty(DEFAULT_CATALOG) == len(DEFAULT_CATALOG)
        laptop = await fresh.get_stock("SKU-LAPTOP")
        assert laptop is not None and laptop.available == 5
    finally:
        await db.close()


def test_catalog_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_INVENTORY_SEED", raising=False)
    assert from_env(InventorySettings).seed_path is None
    assert load_catalog(None) == DEFAULT_CATALOG
    seed = tmp_path / "catalog.json"
    seed.write_text(json.dumps({"SKU-X": 3}))
    monkeypatch.setenv("SHOP_INVENTORY_SEED", str(seed))
    assert load_catalog(from_env(InventorySettings).seed_path) == {"SKU-X": 3}
    seed.write_text(json.dumps({"SKU-X": -3}))
    with pytest.raises(ValueError, match="non-negative"):
        load_catalog(seed)
    with pytest.raises(ValueError, match="cannot read"):
        load_catalog(tmp_path / "missing.json")
