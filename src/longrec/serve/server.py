"""Running the app under uvicorn with a request-header limit.

uvicorn's default HTTP parser (httptools) reads request headers of any size: a 100 MB header
is read in full before the app sees the request. `run()` uses a protocol that counts the
bytes of a request's head (request line + headers) as they arrive and answers 431 (then
closes the connection) as soon as they pass `max_header_bytes`, without reading the rest. With the
pure-Python h11 parser, uvicorn's own `h11_max_incomplete_event_size` is set to the same
limit (uvicorn answers that with a 400).
"""

from __future__ import annotations

import json


def limited_protocol(max_header_bytes: int):
    """An httptools protocol class refusing larger request headers with 431 (None without httptools)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # uvicorn without httptools: h11 limits the headers itself
        return None

    body = json.dumps({"message": f"request headers larger than {max_header_bytes:,} bytes.",
                       "detail": "headers too large"}).encode()
    response = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)

    class HeaderLimitedProtocol(HttpToolsProtocol):
        # httptools hands a header over only once its value is complete, so the bytes are
        # counted as they arrive: every chunk received while a request's head is incomplete
        limit = max_header_bytes
        _in_head = False
        _head_bytes = 0
        _refused = False

        def on_message_begin(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            super().data_received(data)
            if self._in_head and self.transport is not None and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > self.limit:
                    self._refused = True
                    self.transport.write(response)
                    self.transport.close()

    return HeaderLimitedProtocol


def run(app, host: str = "127.0.0.1", port: int = 8000, max_header_bytes: int | None = None, **kw) -> None:
    """uvicorn.run(app) with the header limit of the app's settings (or `max_header_bytes`)."""
    import uvicorn

    if max_header_bytes is None:
        max_header_bytes = app.state.service.settings.max_header_bytes
    proto = limited_protocol(max_header_bytes)
    kw.setdefault("log_level", "warning")
    kw.setdefault("access_log", False)
    uvicorn.run(app, host=host, port=port, http=proto or "h11", h11_max_incomplete_event_size=max_header_bytes, **kw)
