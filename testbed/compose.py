"""The compose deployment (``docker-compose.yml``) run for real, with podman and
podman-compose (installed by ``scripts/setup-compose``).

There may be no registry: ``FROM debian:12-slim`` resolves to a local image that
:func:`ensure_base_image` makes with debootstrap from the Debian mirror apt uses here, and
keeps for later runs. That image also trusts this machine's CA bundle, so pip inside the
build reaches PyPI through whatever this machine trusts: a property of this harness, not of
the project's Dockerfile.

With ``network_mode: host`` the containers share the network namespace podman-compose runs
in. Building needs the mirror and PyPI (a namespace with a way out); the test itself runs
in a private one (``scripts/test-compose``).

    python -m testbed.compose build PROJECT    # the base image if missing, both images
    python -m testbed.compose remove PROJECT   # its containers, volumes and images
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from testbed.controller import Controller
from testbed.ovs import Ovs
from testbed.proc import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PODMAN_COMPOSE = os.path.join(ROOT, ".venv-compose", "bin", "podman-compose")
COMPOSE_FILE = os.path.join(ROOT, "docker-compose.yml")
CLUSTER_FILE = os.path.join(ROOT, "docker-compose.cluster.yml")  # adds a store member
SERVICES = ("ovs", "controller")
TARGETS = {"ovs": "ovs", "controller": "controller", "store": "controller"}  # build target

BASE_IMAGE = "docker.io/library/debian:12-slim"
SUITE = "bookworm"  # Debian 12
APT_SOURCES = "/etc/apt/sources.list.d/debian.sources"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# What the controller container sees: the paths of its volumes (the config's defaults).
CONTAINER_PATHS = {"ovsdb": "unix:/var/run/openvswitch/db.sock",
                   "state_file": "/var/lib/sggw/state.json"}


def podman(*args, check=True, timeout=60):
    return run("podman", *args, check=check, timeout=timeout)


def image_exists(name):
    return subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0


def _mirror():
    """The first URI of apt's deb822 sources (Debian 12's own format)."""
    with open(APT_SOURCES) as handle:
        for line in handle:
            if line.startswith("URIs:"):
                return line.split()[1]
    raise RuntimeError("no URIs: line in %s" % APT_SOURCES)


def ensure_base_image():
    """Make :data:`BASE_IMAGE` from the Debian mirror unless it exists; True if made now."""
    if image_exists(BASE_IMAGE):
        return False
    with tempfile.TemporaryDirectory(prefix="sggw-rootfs-") as rootfs:
        run("debootstrap", "--variant=minbase", SUITE, rootfs, _mirror(), timeout=1800)
        etc = os.path.join(rootfs, "etc")
        shutil.copy(APT_SOURCES, os.path.join(etc, "apt", "sources.list.d"))
        if os.path.exists(os.path.join(etc, "apt", "sources.list")):
            os.unlink(os.path.join(etc, "apt", "sources.list"))
        # this machine's CA bundle, for pip only: ca-certificates keeps its own file
        shutil.copy(CA_BUNDLE, os.path.join(etc, "host-ca.crt"))
        with open(os.path.join(etc, "pip.conf"), "w") as handle:
            handle.write("[global]\ncert = /etc/host-ca.crt\n")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        done = subprocess.run(["podman", "import", "-", BASE_IMAGE], stdin=tar.stdout,
                              capture_output=True, text=True, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or done.returncode != 0:
            raise RuntimeError("podman import of %s failed: %s" % (BASE_IMAGE, done.stderr))
    return True


class Deployment:
    """One compose project: its containers, volumes and images are named after it.

    ``config`` is the sggw.yaml the controller service mounts (``SGGW_YAML``). A host of a
    cluster adds :data:`CLUSTER_FILE` to ``files`` and its ``env`` (``STORE_ADDRESS``, ...);
    with ``netns`` (a network namespace's name) it runs there, as on a host of its own
    (``network_mode: host`` puts its containers in the namespace podman runs in).
    """

    def __init__(self, project, config=None, files=(COMPOSE_FILE,), env=None, netns=None):
        self.project, self.config = project, config
        self.files, self.env, self.netns = tuple(files), dict(env or {}), netns

    @property
    def services(self):
        return SERVICES + (("store",) if CLUSTER_FILE in self.files else ())

    def compose(self, *args, timeout=120):
        env = dict(os.environ, **self.env)
        if self.config:
            env["SGGW_YAML"] = self.config
        # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroups podman needs
        netns = ["nsenter", "--net=/run/netns/" + self.netns] if self.netns else []
        return run(*netns, PODMAN_COMPOSE, "-p", self.project,
                   *[arg for path in self.files for arg in ("-f", path)], *args,
                   timeout=timeout, env=env)

    # --- names --------------------------------------------------------------------------------

    def container(self, service):
        return "%s_%s_1" % (self.project, service)

    def image(self, service):
        return "localhost/%s_%s" % (self.project, service)

    def volume(self, name):
        """Where volume ``name`` (``ovs-run``, ``ovs-db``, ``sggw-state``) is on this host."""
        return podman("volume", "inspect", "--format", "{{.Mountpoint}}",
                      "%s_%s" % (self.project, name)).strip()

    def switch(self):
        """The ovs service's Open vSwitch, through the sockets in its run volume."""
        return Ovs(self.volume("ovs-run"))

    # --- life cycle ---------------------------------------------------------------------------

    def built(self):
        return all(image_exists(self.image(s)) for s in self.services)

    def tag_images(self, built):
        """Name ``built``'s images (a Deployment of the same files) as this project's, so
        that ``up`` finds them instead of building them again."""
        for service in self.services:
            podman("tag", built.image(TARGETS[service]), self.image(service))

    def build(self):
        self.compose("build", timeout=1800)

    def up(self, *services, recreate=False):
        self.compose("up", "-d", *(["--force-recreate"] if recreate else []), *services)

    def stop(self, *services):
        """Stop the services; the seconds it took."""
        started = time.monotonic()
        self.compose("stop", *services)
        return time.monotonic() - started

    def inspect(self, service, field):
        return podman("inspect", "--format", "{{%s}}" % field, self.container(service)).strip()

    def exit_codes(self):
        return {s: int(self.inspect(s, ".State.ExitCode")) for s in self.services}

    def logs(self, service):
        done = subprocess.run(["podman", "logs", self.container(service)], capture_output=True,
                              text=True, check=False)
        return done.stdout + done.stderr

    def down(self):
        """Remove the containers and the volumes (not the images)."""
        self.compose("down", "-v")

    def remove_images(self):
        """Remove its images (and with them their build's intermediate layers; a name given
        by :meth:`tag_images` goes alone)."""
        for service in self.services:
            if image_exists(self.image(service)):
                podman("rmi", self.image(service))


class ContainerController(Controller):
    """The deployment's controller service, driven like a controller process."""

    def __init__(self, deployment, config_path, api_port, log_path, token=None):
        if os.path.abspath(config_path) != os.path.abspath(deployment.config):
            raise ValueError("the controller service mounts %s, not %s"
                             % (deployment.config, config_path))
        super().__init__(config_path, api_port, log_path, token=token)
        self.deployment = deployment

    def start(self):
        self.deployment.up("controller")
        return self

    def running(self):
        return self.deployment.inspect("controller", ".State.Status") == "running"

    def stop(self, kill=False):
        if kill:
            self.deployment.compose("kill", "controller")
        else:
            self.deployment.stop("controller")

    def log(self):
        return self.deployment.logs("controller")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m testbed.compose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "remove"))
    parser.add_argument("project")
    args = parser.parse_args(argv)
    deployment = Deployment(args.project)
    if args.command == "build":
        started = time.monotonic()
        made = ensure_base_image()
        print("base image %s: %s in %.0f s" % (
            BASE_IMAGE, "made" if made else "cached", time.monotonic() - started),
            file=sys.stderr)
        started = time.monotonic()
        deployment.build()
        print("images built in %.0f s" % (time.monotonic() - started), file=sys.stderr)
    else:
        deployment.down()
        deployment.remove_images()


if __name__ == "__main__":
    main()
