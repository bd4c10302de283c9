"""Raw HTTP over a socket, for requests no client library would send.

Every request sent here asks for ``Connection: close``, so a response is read
until the server closes: reading only up to the first CRLF could stop before
the body arrived (it came in a second packet on a loaded machine).
"""

import socket


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends before it closes (or resets) the connection."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass  # a refusal mid-request may reset after the answer was sent
    return received


def send_raw(port: int, data: bytes, timeout: float = 10) -> tuple[int | None, bytes]:
    """Send raw bytes; return (status, whole response), or (None, b"") when the
    server closed the connection without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused part-way: judged by what comes back, if anything
        received = read_until_closed(sock)
    if not received:
        return None, b""
    status_line = received.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), received
