"""Debian's own kernel in a small virtual machine: Open vSwitch's kernel datapath on a
machine whose kernel has no ``openvswitch`` module (a container, a CI or cloud VM).

virtme-ng (``vng``, in the venv) boots ``/boot/vmlinuz-*`` (Debian's ``linux-image-amd64``,
which has the module; scripts/setup-env installs both) under QEMU. The guest's root file
system is this machine's, read-only over 9p, with a writable layer of its own over
``/tmp``, ``/etc``, ``/var`` (lost at power-off), so it runs this checkout, its venv and
Debian's OVS exactly as they are here. It runs one command, then powers off; the command's
standard output and error come back as the VM's.

The guest starts with ``testbed/vm-guest``: it mounts this machine's files a second time
with 9p's page and attribute cache (the root mount has none, and every ``stat`` of an import
or ``exec`` would cross to the host), loads ``openvswitch`` and runs the command.

KVM is used only where the CPU has hardware virtualization (``vmx``/``svm``); elsewhere QEMU
emulates the CPU (TCG): correct, but the same work takes 10-15 times longer, which the
guest measures (:func:`speed`, here and there) to lengthen the bed's deadlines. Boot to the
command: about 10 s (20-25 s on a loaded machine).

Why not KVM on this project's machines (Firecracker guests, tried on 2026-12-07): their
``/dev/kvm`` is ``kvm_pvm`` (a page-table-based hypervisor, ``nested_pvm=1``; no ``vmx`` or
``svm`` in /proc/cpuinfo), which runs kernels built as PVM guests (CONFIG_PVM_GUEST, as the
host's own) at speed and an unmodified kernel such as Debian's in emulation of its own:

- ``-cpu max``/``host``: QEMU stops at once, "failed to set MSR 0x10a" (the host reports no
  IA32_ARCH_CAPABILITIES); ``-cpu host,arch-capabilities=off``, ``qemu64``, ``kvm64``,
  machine types q35, pc and microvm: all boot, but the bzImage's decompressor alone ran
  for more than 5 minutes (its byte-copy loop at ~200 KB/s: every few instructions exit
  to the hypervisor), also with ``nokaslr``, ``noapic``, ``nolapic``, ``no-kvmclock``,
  ``tsc=reliable``, ``clocksource=tsc``, ``earlyprintk``.
- Booting the decompressed ``vmlinux`` through its PVH entry skips the decompressor: the
  kernel then reached its memory setup after 12 s of guest time (TCG: the whole boot to
  the root mount in 2.2 s), about 100 times slower than emulation.
- Debian has no PVM guest kernel, and the host's own (which is one) has no module support
  and no openvswitch: KVM here would need a kernel built for it. So: TCG, with ``-cpu
  qemu64`` (below).
"""
import glob
import os
import re
import signal
import subprocess
import sys
import time

from testbed.proc import alive, stop_pid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST_INIT = os.path.join(ROOT, "testbed", "vm-guest")
HOST_FS_TAG = "sggwhost"  # the 9p export vm-guest mounts with caching
CALIBRATION = 300_000  # loop rounds of speed(): about 20 ms on a 2-vCPU machine


def kernel():
    """The newest /boot/vmlinuz-* whose modules include openvswitch."""
    found = []
    for image in glob.glob("/boot/vmlinuz-*"):
        version = image[len("/boot/vmlinuz-"):]
        if glob.glob("/lib/modules/%s/kernel/net/openvswitch/openvswitch.ko*" % version):
            found.append((_version_key(version), image))
    if not found:
        raise RuntimeError("no kernel with the openvswitch module in /boot (Debian's "
                           "linux-image-amd64): run scripts/setup-env")
    return max(found)[1]


def _version_key(version):
    return [int(n) for n in re.findall(r"\d+", version)]


def kernel_datapath_here():
    """Whether this machine's own kernel has OVS's datapath (loaded, or loadable now)."""
    if os.path.isdir("/sys/module/openvswitch"):
        return True
    try:
        return subprocess.run(["modprobe", "-q", "openvswitch"], check=False,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def hardware_virtualization():
    """Whether KVM can run the guest at the CPU's own speed: /dev/kvm, and a CPU with
    Intel VT-x or AMD-V. (A /dev/kvm without them, e.g. a nested page-table-based
    hypervisor, runs an unmodified Debian kernel far slower than emulation does.)"""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with open("/proc/cpuinfo") as handle:
        flags = next((line.split(":", 1)[1].split() for line in handle
                      if line.startswith("flags")), [])
    return "vmx" in flags or "svm" in flags


def speed(rounds=CALIBRATION):
    """Seconds this interpreter takes for a fixed piece of pure-Python work (the best of
    three): the same measure here and in the guest gives the guest's slowdown."""
    best = None
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(rounds):
            total += i % 7
        took = time.perf_counter() - started
        best = took if best is None else min(best, took)
    return best


class KernelVm:
    """``KernelVm(argv, env).start()``: the guest runs ``argv`` (in this checkout, as root,
    with ``env`` added); read its standard output and error from ``.stdout``, ``.stderr``;
    ``.wait()`` for it to end by itself, ``.stop()`` powers it off at once."""

    def __init__(self, argv, env=None, cpus=2, memory="2G"):
        self.argv = [str(a) for a in argv]
        self.env = dict(env or {})
        self.cpus, self.memory = cpus, memory
        self.accel = "kvm" if hardware_virtualization() else "tcg"
        self.process = None

    def command(self):
        """The ``vng`` command line that boots the guest."""
        fsdev = "local,id=%s,path=/,security_model=none,readonly=on,multidevs=remap" % HOST_FS_TAG
        qemu = ["-fsdev", fsdev, "-device", "virtio-9p-pci,fsdev=%s,mount_tag=%s"
                % (HOST_FS_TAG, HOST_FS_TAG)]
        if self.accel == "tcg":
            # An old CPU model: the guest's libc then takes plain SSE2 string functions,
            # which emulate faster than the AVX ones it picks on "max"; it boots faster too.
            qemu += ["-cpu", "qemu64"]
        exports = ["%s=%s" % item for item in sorted(self.env.items())]
        guest = " ".join(_quote(a) for a in [GUEST_INIT, sys.base_prefix, ROOT,
                                             "env", *exports, *self.argv])
        return [os.path.join(os.path.dirname(sys.executable), "vng"), "--run", kernel(),
                "--user", "root", "--cpus", str(self.cpus), "--memory", self.memory,
                "--cwd", ROOT, *([] if self.accel == "kvm" else ["--disable-kvm"]),
                "--qemu-opts=" + " ".join(qemu), "--exec", guest]

    def start(self):
        # virtme-ng's vng runs its virtme-run from PATH
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + ":" + os.environ["PATH"])
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, start_new_session=True)
        return self

    @property
    def stdout(self):
        return self.process.stdout

    @property
    def stderr(self):
        return self.process.stderr

    def wait(self, timeout=None):
        return self.process.wait(timeout=timeout)

    def stop(self):
        """Power the guest off: QEMU and its helpers are vng's process group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        for pid in _group_members(self.process.pid):  # QEMU outliving vng
            stop_pid(pid)


def _group_members(pgid):
    """Live processes of process group ``pgid``."""
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and alive(int(pid)):
            members.append(int(pid))
    return members


def _quote(arg):
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'%s'" % arg.replace("'", "'\\''")
