"""Gateway nodes as one cluster over NATS: membership (here), pauses across nodes
(``control``), the stream bus (``bus``), several nodes on one machine (``workers``).

``control`` imports the gateway's state; import it as ``neurogate.gateway.cluster.control``.
"""

from neurogate.gateway.cluster.membership import (
    ClusterError,
    Membership,
    NodeRecord,
    connect,
    connect_options,
    join,
    open_bucket,
    read_nodes,
)

__all__ = [
    "ClusterError",
    "Membership",
    "NodeRecord",
    "connect",
    "connect_options",
    "join",
    "open_bucket",
    "read_nodes",
]
