"""Exit 0 when the PostgreSQL and Redis URLs given on the command line (and the RabbitMQ URL,
when a third is given) accept connections."""

import socket
import sys
from urllib.parse import urlparse


def reachable(url: str, default_port: int) -> bool:
    parts = urlparse(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    ports = [5432, 6379, 5672]
    sys.exit(0 if all(reachable(u, p) for u, p in zip(sys.argv[1:], ports, strict=False)) else 1)
