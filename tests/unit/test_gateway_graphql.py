"""GraphQL documents too costly to run are refused before any resolver (RPC) runs."""

from __future__ import annotations

from services.gateway.graphql import MAX_ALIASES, MAX_TOKENS, schema


async def errors_of(query: str) -> list[str]:
    result = await schema.execute(query, context_value={})
    return [e.message for e in result.errors or []]


async def test_too_many_aliases_are_refused() -> None:
    fields = " ".join(f'a{i}: stock(sku: "SKU-{i}") {{ sku }}' for i in range(MAX_ALIASES + 1))
    (message,) = await errors_of(f"{{ {fields} }}")
    assert "aliases" in message.lower()


async def test_a_too_long_document_is_refused() -> None:
    messages = await errors_of("{ __typename " + "__typename " * MAX_TOKENS + "}")
    assert any("token" in m.lower() for m in messages), messages


async def test_an_ordinary_query_passes_the_limits() -> None:
    result = await schema.execute("{ __typename }", context_value={})
    assert result.errors is None and result.data == {"__typename": "Query"}
