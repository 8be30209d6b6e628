"""From generated gRPC code to proto descriptors and back: which service a servicer or a
stub class is, and the ``_pb2_grpc`` module that serves or calls a descriptor."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor


def grpc_module(file: FileDescriptor) -> ModuleType:
    """The ``*_pb2_grpc`` module generated for a proto file."""
    return importlib.import_module(file.name.removesuffix(".proto").replace("/", ".") + "_pb2_grpc")


def _generated(cls: type, suffix: str) -> ServiceDescriptor | None:
    if not cls.__name__.endswith(suffix) or not cls.__module__.endswith("_pb2_grpc"):
        return None
    pb2 = sys.modules.get(cls.__module__.removesuffix("_grpc")) or importlib.import_module(
        cls.__module__.removesuffix("_grpc")
    )
    return pb2.DESCRIPTOR.services_by_name.get(cls.__name__.removesuffix(suffix))


def service_of_servicer(servicer: Any) -> ServiceDescriptor:
    """The proto service a servicer implements: the generated ``<Name>Servicer`` it extends."""
    for cls in type(servicer).__mro__:
        descriptor = _generated(cls, "Servicer")
        if descriptor is not None:
            return descriptor
    raise TypeError(
        f"{type(servicer).__name__} extends no generated *Servicer class;"
        " pass the service descriptor to add_service explicitly"
    )


def service_of_stub(stub_cls: type) -> ServiceDescriptor:
    """The proto service a generated ``<Name>Stub`` class calls."""
    descriptor = _generated(stub_cls, "Stub")
    if descriptor is None:
        raise TypeError(f"{stub_cls.__name__} is not a generated *Stub class")
    return descriptor


def add_servicer(server: grpc.aio.Server, descriptor: ServiceDescriptor, servicer: Any) -> None:
    """Register ``servicer`` on ``server`` through the generated ``add_*_to_server``."""
    module = grpc_module(descriptor.file)
    getattr(module, f"add_{descriptor.name}Servicer_to_server")(servicer, server)
