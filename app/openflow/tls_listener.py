"""Ryu's OpenFlow listener as sggw needs it: over TLS for every switch, not only the first,
and with room for many switches connecting at once.

Ryu 4.34's TLS listener (``ryu.lib.hub.StreamServer`` with an SSL context) loads the
certificates into the context when the first switch connects, popping them from its
arguments; every later connection is wrapped without them and fails with "no shared
cipher". :class:`StreamServer` prepares the context once, when the listener is made, and
wraps every connection with it. Ryu listens with eventlet's backlog of 50: 100 switches
that connect together (a controller restart) overflow it, and each one whose SYN is
dropped tries again only 1-3 s later (measured: 4.4 s for the last one), so the backlog is
raised to :data:`BACKLOG`. Installed into ``ryu.controller.controller`` by
:func:`install` (sggw_app calls it at import, before Ryu starts listening).
"""
from ryu.controller import controller
from ryu.lib import hub

BACKLOG = 1024  # connections waiting to be accepted (the kernel caps it at somaxconn)


class StreamServer(hub.StreamServer):
    def __init__(self, listen_info, handle=None, backlog=None, spawn="default", **ssl_args):
        ctx = ssl_args.pop("ssl_ctx", None)
        if ctx is None:  # plain TCP, or a Python without SSLContext: Ryu's own way
            super().__init__(listen_info, handle, backlog, spawn, **ssl_args)
            self.server.listen(BACKLOG)
            return
        ctx.load_cert_chain(ssl_args.pop("certfile"), ssl_args.pop("keyfile"))
        if "cert_reqs" in ssl_args:
            ctx.verify_mode = ssl_args.pop("cert_reqs")
        if "ca_certs" in ssl_args:
            ctx.load_verify_locations(ssl_args.pop("ca_certs"))
        super().__init__(listen_info, handle, backlog, spawn)
        self.server.listen(BACKLOG)
        self.handle = lambda sock, addr: handle(ctx.wrap_socket(sock, server_side=True), addr)


def install():
    controller.StreamServer = StreamServer
