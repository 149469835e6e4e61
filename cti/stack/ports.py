"""Free loopback ports for private services."""

from __future__ import annotations

import random
import socket


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nothing is bound to now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_udp_range(
    size: int, host: str = "127.0.0.1", *, low: int = 20000, high: int = 59000, attempts: int = 50
) -> tuple[int, int]:
    """An even-aligned block of *size* UDP ports, all free now (for RTP)."""
    for _ in range(attempts):
        start = random.randrange(low, high - size) & ~1
        socks: list[socket.socket] = []
        try:
            for port in range(start, start + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((host, port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return start, start + size - 1
    raise RuntimeError(f"no block of {size} free UDP ports on {host} after {attempts} tries")
