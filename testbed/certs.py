"""Test certificates made with openssl: a CA and keys and certificates it signed."""
import os
import subprocess


def make_certs(directory, names=("controller", "switch")):
    """{file name: path} of ``ca.pem`` and ``NAME.key``, ``NAME.pem`` for each of ``names``,
    made in ``directory``."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=sggw test CA %s" % os.path.basename(directory), "-keyout", "ca.key",
            "-out", "ca.pem")
    for name in names:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=sggw test " + name,
                "-keyout", name + ".key", "-out", name + ".csr")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", name + ".pem")
    files = ["ca.pem"] + [name + ext for name in names for ext in (".key", ".pem")]
    return {name: os.path.join(directory, name) for name in files}
