"""TLS for the network transports (HTTPS, MQTT over TLS): one way to build the context, one way
to explain a failed handshake.

The context always comes from :func:`ssl.create_default_context` (TLS 1.2+, the system CAs unless
``ca_file`` names a private CA, host name checked), so HTTP and MQTT behave alike.
"""

from __future__ import annotations

import ssl


def tls_context(verify: bool = True, ca_file: str | None = None, cert_file: str | None = None,
                key_file: str | None = None) -> ssl.SSLContext:
    """``verify=False`` accepts any certificate (test benches only); ``ca_file`` pins a private CA;
    ``cert_file`` / ``key_file`` is the client certificate for servers that require one."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


def describe_tls_error(e: BaseException) -> str | None:
    """A sentence an operator can act on for a TLS failure, or None when ``e`` is not one."""
    if isinstance(e, ssl.SSLCertVerificationError):
        why = e.verify_message or str(e)
        if "hostname" in why.lower() or "ip address mismatch" in why.lower():
            hint = "the certificate does not name this host; use a host name it was issued for"
        else:
            hint = "set ca_file to the CA that signed the server's certificate, or fix the server's chain"
        return f"TLS certificate verification failed: {why} ({hint})"
    if isinstance(e, ssl.SSLError):
        reason = getattr(e, "reason", None) or str(e)
        if "CERTIFICATE_REQUIRED" in str(reason).upper() or "alert certificate required" in str(e).lower():
            return f"TLS handshake failed: {reason} (the server wants a client certificate: set cert_file)"
        return f"TLS handshake failed: {reason}"
    return None


__all__ = ["describe_tls_error", "tls_context"]
