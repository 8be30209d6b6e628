"""Kafka ACLs of a service, and ``CreateAcls`` sent through aiokafka's protocol (aiokafka
has no ACL API; Kafka's own ``AclCommand`` is not in the broker's jars).

What each service may do is in devstack/brokers/kafka.py's doc; the codes are Kafka's
(``org.apache.kafka.common.acl.AclOperation``, ``resource.ResourceType``,
``PatternType``, ``AclPermissionType``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import CreateAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request

from meshkit.config import EventsSettings
from meshkit.events.kafka import dead_topic, family_topic, retry_topic

ANY = 1  # of each enum, in a filter
TOPIC, GROUP, CLUSTER = 2, 3, 4  # ResourceType
LITERAL = 3  # PatternType
READ, WRITE, IDEMPOTENT_WRITE = 3, 4, 12  # AclOperation
ALLOW = 3  # AclPermissionType
CLUSTER_NAME = "kafka-cluster"


class Acl(NamedTuple):
    """One ALLOW rule for ``principal`` from any host, on a literal resource."""

    resource_type: int
    resource_name: str
    principal: str
    operation: int

    def creation(self) -> tuple[Any, ...]:
        return (
            self.resource_type,
            self.resource_name,
            LITERAL,
            self.principal,
            "*",
            self.operation,
            ALLOW,
        )


def service_acls(service: str, events: EventsSettings) -> list[Acl]:
    """What ``service`` may do: write the families of the types it owns, read every
    family, use its own group and its own retry and dead-letter topics."""
    user = f"User:{service}"
    owned = sorted({family_topic(t) for t in events.owned_by(service)})
    families = sorted({family_topic(t) for t in events.owners})
    acls = [Acl(TOPIC, topic, user, WRITE) for topic in owned]
    acls += [Acl(TOPIC, topic, user, READ) for topic in families]
    for topic in (retry_topic(service), dead_topic(service)):
        acls += [Acl(TOPIC, topic, user, READ), Acl(TOPIC, topic, user, WRITE)]
    acls.append(Acl(GROUP, service, user, READ))
    acls.append(Acl(CLUSTER, CLUSTER_NAME, user, IDEMPOTENT_WRITE))
    return acls


class _CreateAcls(Request[CreateAclsRequest_v1]):
    """A batch of ACL creations in one request (aiokafka's ``CreateAclsRequest`` has one)."""

    API_KEY = 30

    def __init__(self, acls: Sequence[Acl]) -> None:
        self.creations = [a.creation() for a in acls]

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self.creations)


async def create_acls(admin: AIOKafkaAdminClient, acls: Sequence[Acl]) -> None:
    """``acls`` created (an existing one is kept); KafkaError naming the first refused."""
    if not acls:
        return
    response = await admin._send_request(_CreateAcls(acls))
    for acl, (code, message) in zip(acls, response.creation_responses, strict=True):
        if code != 0:
            raise KafkaError(f"creating ACL {acl}: error {code} {message}")


async def described_acls(admin: AIOKafkaAdminClient) -> set[Acl]:
    """The ALLOW ACLs on literal resources the broker enforces now (its authorizer's)."""
    response = await admin._send_request(
        DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY)  # type: ignore[arg-type]
    )
    if response.error_code:
        raise KafkaError(f"describing ACLs: error {response.error_code} {response.error_message}")
    return {
        Acl(rtype, name, principal, operation)
        for rtype, name, pattern, acls in response.resources
        if pattern == LITERAL
        for principal, _host, operation, permission in acls
        if permission == ALLOW
    }


async def wait_enforced(admin: AIOKafkaAdminClient, acls: Sequence[Acl], timeout: float) -> None:
    """Until the broker's authorizer has ``acls`` (the controller acknowledges a creation
    before the broker has applied it); TimeoutError naming those missing."""
    deadline = time.monotonic() + timeout
    while missing := set(acls) - await described_acls(admin):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka does not enforce {len(missing)} ACLs: {sorted(missing)[:3]}")
        await asyncio.sleep(0.1)
