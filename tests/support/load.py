"""The bounded, steady load of the chaos tests: ``devstack.load_driver`` (the cluster's
fault scenarios drive it too), for the tests."""

from devstack.load_driver import Call, Load, drive

__all__ = ["Call", "Load", "drive"]
