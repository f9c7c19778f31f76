"""Resolve the config's port references (numbers or names) against a switch's ports."""
from dataclasses import dataclass

from flows.ofp import OFPP_LOCAL


@dataclass(frozen=True)
class PortMap:
    """Port numbers per role on one switch. Ports the switch does not have are in ``missing``."""

    lan: tuple = ()
    wan: int = None
    tunnel: int = None
    missing: tuple = ()  # (role, ref) pairs the switch does not have
    refs: tuple = ()  # (config ref, port number) pairs, for select()
    switch_ports: tuple = ()  # (port number, name) of every port on the switch
    local: int = OFPP_LOCAL

    @property
    def wire(self):
        """The ports of the transparent wire: lan, wan and the bridge's LOCAL port."""
        return self.lan + ((self.wan,) if self.wan is not None else ()) + (self.local,)

    @property
    def all(self):
        return self.wire + ((self.tunnel,) if self.tunnel is not None else ())

    def role(self, port):
        if port in self.lan:
            return "lan"
        for role in ("wan", "tunnel", "local"):
            if getattr(self, role) == port:
                return role
        return None

    def select(self, refs):
        """Port numbers for capture ``in_port`` refs: role names or configured port refs."""
        out = []
        for ref in refs:
            if ref == "lan":
                out.extend(self.lan)
            elif ref in ("wan", "local"):
                if getattr(self, ref) is not None:
                    out.append(getattr(self, ref))
            elif ref in dict(self.refs):
                out.append(dict(self.refs)[ref])
        return tuple(dict.fromkeys(out))

    def lookup(self, ref):
        """The number of switch port ``ref`` (a number or an interface name), or None."""
        for number, name in self.switch_ports:
            if ref == number or ref == name:
                return number
        return None

    def expand(self, ref):
        """Port numbers for a mirror source: a role's ports, or the one port ``ref`` names."""
        if ref == "lan":
            return self.lan
        if ref in ("wan", "tunnel", "local"):
            port = getattr(self, ref)
            return (port,) if port is not None else ()
        port = self.lookup(ref)
        return (port,) if port is not None else ()


def resolve(ports_cfg, switch_ports):
    """Map ``ports_cfg`` (config.Ports) onto ``switch_ports`` ({port_no: name})."""
    by_name = {name: no for no, name in switch_ports.items()}
    missing, refs = [], []

    def find(role, ref):
        no = ref if isinstance(ref, int) and ref in switch_ports else by_name.get(ref)
        if no is None:
            missing.append((role, ref))
        else:
            refs.append((ref, no))
        return no

    lan = tuple(no for no in (find("lan", ref) for ref in ports_cfg.lan) if no is not None)
    wan = find("wan", ports_cfg.wan) if ports_cfg.wan is not None else None
    tunnel = find("tunnel", ports_cfg.tunnel) if ports_cfg.tunnel is not None else None
    return PortMap(lan=lan, wan=wan, tunnel=tunnel, missing=tuple(missing), refs=tuple(refs),
                   switch_ports=tuple(sorted(switch_ports.items())))
