"""py-consul's asyncio client without its blocking one.

``import consul`` runs py-consul's ``__init__``, which imports ``consul.std``, its blocking
client, and with it ``requests`` (urllib3, charset_normalizer, idna, ``importlib.metadata``
for ``__version__``): about 5 MiB of a service's resident memory that the mesh never uses,
since it speaks to Consul through ``consul.aio`` only.

:func:`install` registers the ``consul`` package without running its ``__init__``: the
names the asyncio client's modules take from the package (``Check``, ``Timeout``, the
exceptions) are set from the submodules that define them, and the rest of ``__init__``
(``Consul``, the blocking client, and ``__version__``) runs the first time one of its names
is asked for, so ``import consul; consul.Consul(...)`` works as before. ``meshkit`` calls
it before anything imports py-consul; if ``consul`` was imported already, it does nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

# What py-consul's __init__ binds besides its submodules, and where each is defined.
_EAGER = {
    "consul.check": ("Check",),
    "consul.exceptions": (
        "ACLDisabled",
        "ACLPermissionDenied",
        "ConsulException",
        "NotFound",
        "Timeout",
    ),
}
# Bound only by running __init__ itself: the blocking client and the version lookup.
_DEFERRED = frozenset({"Consul", "__version__", "version", "PackageNotFoundError"})


def install() -> None:
    """Register ``consul`` as a package whose ``__init__`` runs on first use of a name only
    it defines (see the module's docstring)."""
    if "consul" in sys.modules:
        return
    spec = importlib.util.find_spec("consul")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not installed: `import consul` raises as it would have
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def __getattr__(name: str) -> Any:
        # Only __init__'s own names: the import system probes the package with hasattr for
        # `from consul import <submodule>`, which must fall through to importing it.
        if name not in _DEFERRED:
            raise AttributeError(f"module 'consul' has no attribute {name!r}")
        del package.__dict__["__getattr__"]
        loader.exec_module(package)  # the real __init__: consul.std, requests, __version__
        return getattr(package, name)

    sys.modules["consul"] = package
    try:
        for module_name, names in _EAGER.items():
            module: ModuleType = importlib.import_module(module_name)
            for name in names:
                setattr(package, name, getattr(module, name))
    except Exception:  # another py-consul layout: import it the ordinary way
        for name in [m for m in sys.modules if m == "consul" or m.startswith("consul.")]:
            del sys.modules[name]
        return
    package.__getattr__ = __getattr__


install()  # on import: meshkit/__init__.py imports this module before anything else
