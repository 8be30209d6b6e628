"""The shop's services and the mesh runtime they share (``meshkit``)."""
