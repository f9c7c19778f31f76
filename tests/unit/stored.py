"""Objects made as REST makes them, and committed to a store (the file or the cluster one)
the way the service commits a change: both stores are tested through the same steps."""
from dataclasses import replace

from app import config


def made(cfg, kind, body, ident):
    parse = config.capture_rule if kind == "captures" else config.mirror
    return replace(parse(body, None, cfg.datapaths["site"].ports), id=ident)


def committed(store, kind, objects):
    """``objects`` become the datapath's whole list of ``kind``."""
    changed = store.with_changed("site", kind, put=objects, drop=[
        o.id for o in store.get("site", kind) if o.id not in {n.id for n in objects}])
    store.commit(store.write(changed), changed)
