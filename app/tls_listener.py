"""OpenFlow over TLS for every switch, not only the first.

Ryu 4.34's TLS listener (``ryu.lib.hub.StreamServer`` with an SSL context) loads the
certificates into the context when the first switch connects, popping them from its
arguments; every later connection is wrapped without them and fails with "no shared
cipher". :class:`StreamServer` prepares the context once, when the listener is made, and
wraps every connection with it. Installed into ``ryu.controller.controller`` by
:func:`install` (sggw_app calls it at import, before Ryu starts listening).
"""
from ryu.controller import controller
from ryu.lib import hub


class StreamServer(hub.StreamServer):
    def __init__(self, listen_info, handle=None, backlog=None, spawn="default", **ssl_args):
        ctx = ssl_args.pop("ssl_ctx", None)
        if ctx is None:  # plain TCP, or a Python without SSLContext: Ryu's own way
            super().__init__(listen_info, handle, backlog, spawn, **ssl_args)
            return
        ctx.load_cert_chain(ssl_args.pop("certfile"), ssl_args.pop("keyfile"))
        if "cert_reqs" in ssl_args:
            ctx.verify_mode = ssl_args.pop("cert_reqs")
        if "ca_certs" in ssl_args:
            ctx.load_verify_locations(ssl_args.pop("ca_certs"))
        super().__init__(listen_info, handle, backlog, spawn)
        self.handle = lambda sock, addr: handle(ctx.wrap_socket(sock, server_side=True), addr)


def install():
    controller.StreamServer = StreamServer
