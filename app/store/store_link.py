"""Why sggw's connection to its clustered store is down, said precisely.

The ``ovs`` IDL retries members on its own and, for ``ssl:`` ones, reduces a failed TLS
handshake to an errno ("Operation not permitted"). While the store does not answer,
:class:`Doctor` opens each member itself, as the IDL would (the same TLS files, then an
OVSDB ``echo``), and keeps one line naming the member and the cause: a certificate the
member refuses, a member certificate that ``ca_cert`` does not verify, no answer. It is
logged once per new cause and shown in health (``cluster.store_error``).
"""
import json
import logging
import os
import re
import socket
import ssl

from ryu.lib import hub

LOG = logging.getLogger("sggw.store")
CHECK_EVERY = 2.0  # seconds between looks at a store connection that is down
PROBE_TIMEOUT = 3.0
VERDICT_WAIT = 0.5  # seconds a member has to refuse this instance's certificate
ECHO = json.dumps({"id": "sggw-probe", "method": "echo", "params": []}).encode()
TLS_KEY = "cluster.store_tls"


def client_context(tls):
    """The TLS context the ovs library opens ``ssl:`` members with (ovs.stream.SSLStream:
    peer certificate required, no host name check, TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(tls.ca_cert)
    context.load_cert_chain(tls.certificate, tls.private_key)
    return context


def probe(member, tls, timeout=PROBE_TIMEOUT):
    """Why ``member`` (tcp: or ssl:HOST:PORT) does not answer an OVSDB echo, or None."""
    kind, rest = member.split(":", 1)
    host, port = rest.rsplit(":", 1)
    try:
        context = client_context(tls) if kind == "ssl" else None
    except OSError as exc:  # the files were read at start: changed since?
        return "cannot load the %s files: %s" % (TLS_KEY, exc.strerror or exc)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout) as raw:
            if context is None:
                return _echo(raw)
            with context.wrap_socket(raw) as sock:
                return _verdict(sock) or _echo(sock)
    except ssl.SSLCertVerificationError as exc:
        return "its certificate does not verify with %s.ca_cert: %s" % (
            TLS_KEY, exc.verify_message)
    except ssl.SSLError as exc:
        if "CERTIFICATE" in (exc.reason or "") or "UNKNOWN_CA" in (exc.reason or ""):
            return "it refuses this instance's certificate (%s.certificate): %s" % (
                TLS_KEY, _ssl_text(exc))
        return "TLS failed: %s" % _ssl_text(exc)
    except socket.timeout:
        return "no answer within %.0f s" % timeout
    except OSError as exc:  # eventlet's strerror is the errno's name: say it as the OS does
        return "cannot connect: %s" % (os.strerror(exc.errno) if exc.errno else exc)


def _verdict(sock):
    """With TLS 1.3 a member judges this instance's certificate after the handshake: wait
    for its refusal before writing, or the write can make it reset the connection and the
    refusal is lost."""
    timeout = sock.gettimeout()
    sock.settimeout(VERDICT_WAIT)
    try:
        if not sock.recv(4096):
            return "it closed the connection after the TLS handshake"
    except socket.timeout:
        pass
    finally:
        sock.settimeout(timeout)
    return None


def _echo(sock):
    sock.sendall(ECHO)
    if not sock.recv(4096):
        return "it closed the connection without answering"
    return None


def _ssl_text(exc):
    """'tlsv1 alert unknown ca' out of '[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca
    (_ssl.c:2580)'."""
    return re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", exc.strerror or str(exc))


class Doctor:
    """Looks at the members whenever ``live()`` is False; :attr:`error` says why."""

    def __init__(self, remotes, tls, live):
        self.members = remotes.split(",")
        self.tls = tls
        self.live = live
        self.error = None

    def start(self):
        hub.spawn(self._loop)

    def _loop(self):
        while True:
            hub.sleep(CHECK_EVERY)
            if self.live():
                self.error = None
                continue
            causes = ["%s: %s" % (m, why) for m in self.members
                      if (why := probe(m, self.tls)) is not None]
            error = "; ".join(causes) or None
            if error and error != self.error:
                LOG.error("store: not connected: %s", error)
            self.error = error
