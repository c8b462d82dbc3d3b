"""The one TLS context of a soul process, shared by every HTTP client it makes.

httpx builds a context for each client, and reading the CA bundle into one takes
15-30 ms; a soul run makes up to three clients (the API, the images, the style
previews). Plain http to this machine (the offline fake) speaks no TLS, so a run
that only talks to it reads no bundle at all.
"""

from __future__ import annotations

import os
import ssl
import threading

_lock = threading.Lock()
_context: ssl.SSLContext | None = None
_trusting = False  # whether the CA bundle is in _context yet


def tls_context(*, for_tls: bool = True) -> ssl.SSLContext:
    """The process's TLS context; the CA bundle is read into it once, for the first
    client that may speak TLS (`for_tls`).

    Until then it trusts no certificate at all, so a handshake with it fails rather
    than going unchecked. It checks certificates and host names.
    """
    global _context, _trusting
    with _lock:
        if _context is None:
            # PROTOCOL_TLS_CLIENT: certificates required, host names checked.
            _context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if for_tls and not _trusting:
            _trust(_context)
            _trusting = True
        return _context


def _trust(context: ssl.SSLContext) -> None:
    # What httpx trusts by default: $SSL_CERT_FILE, else $SSL_CERT_DIR, else certifi's bundle.
    if os.environ.get("SSL_CERT_FILE"):
        context.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
    elif os.environ.get("SSL_CERT_DIR"):
        context.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
    else:
        import certifi

        context.load_verify_locations(cafile=certifi.where())
