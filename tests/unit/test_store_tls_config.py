"""``cluster.store_tls``: the files for ``ssl:`` store members are read when the config is,
and every problem is one config error naming its key (real files made by openssl)."""
import os
import subprocess

import pytest
import yaml

from app import config
from app.config import ConfigError, StoreTls
from testbed.certs import make_certs
from tests.unit.test_config import CLUSTER, MINIMAL, SOURCE, check_error

SSL_STORE = "ssl:10.0.0.1:6641,ssl:10.0.0.2:6641,ssl:10.0.0.3:6641"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    files = make_certs(str(tmp_path_factory.mktemp("ca")), ("sggw", "other"))
    directory = os.path.dirname(files["ca.pem"])
    files["encrypted.key"] = os.path.join(directory, "encrypted.key")
    subprocess.run(["openssl", "genrsa", "-aes128", "-passout", "pass:secret", "-out",
                    files["encrypted.key"], "2048"], check=True, capture_output=True)
    files["empty"] = os.path.join(directory, "empty")
    open(files["empty"], "w").close()
    return files


def text(store=SSL_STORE, **tls):
    cluster = dict(CLUSTER, store=store)
    if tls:
        cluster["store_tls"] = {k: v for k, v in tls.items() if v is not None}
    return MINIMAL + yaml.safe_dump({"cluster": cluster})


def good(pki, **changes):
    files = {"private_key": pki["sggw.key"], "certificate": pki["sggw.pem"],
             "ca_cert": pki["ca.pem"]}
    return dict(files, **changes)


def reject(config_text, path, fragment):
    with pytest.raises(ConfigError) as info:
        config.loads(config_text, SOURCE)
    check_error(info.value, path, fragment)


def test_ssl_members_with_their_files(pki):
    cfg = config.loads(text(**good(pki)), SOURCE)
    assert cfg.cluster.store == SSL_STORE
    assert cfg.cluster.store_tls == StoreTls(pki["sggw.key"], pki["sggw.pem"], pki["ca.pem"])
    assert config.loads(text(store=CLUSTER["store"]), SOURCE).cluster.store_tls is None


def test_ssl_members_need_the_files():
    reject(text(), "cluster.store_tls", "is required: ssl:10.0.0.1:6641 is an ssl: member "
                                        "(give private_key, certificate and ca_cert)")
    reject(text(store="tcp:10.0.0.1:6641,ssl:10.0.0.2:6641"), "cluster.store_tls",
           "is required: ssl:10.0.0.2:6641 is an ssl: member")


def test_files_without_ssl_members_are_refused(pki):
    reject(text(store=CLUSTER["store"], **good(pki)), "cluster.store_tls",
           "no member of cluster.store is ssl: (write ssl:IP:PORT to use TLS)")


@pytest.mark.parametrize("changes, path, fragment", [
    ({"ca_cert": None}, "cluster.store_tls.ca_cert", "is required"),
    ({"password": "x"}, "cluster.store_tls.password", "unknown key (expected one of: "
                                                      "private_key, certificate, ca_cert)"),
    ({"certificate": 5}, "cluster.store_tls.certificate", "expected a file path, got 5"),
    ({"private_key": "/nonexistent/sggw.key"}, "cluster.store_tls.private_key",
     "cannot read /nonexistent/sggw.key: No such file or directory"),
    ({"ca_cert": "/"}, "cluster.store_tls.ca_cert", "cannot read /: Is a directory"),
], ids=["missing-key", "unknown-key", "not-a-path", "no-such-file", "a-directory"])
def test_bad_entries(pki, changes, path, fragment):
    reject(text(**good(pki, **changes)), path, fragment)


@pytest.mark.parametrize("key, wrong, fragment", [
    ("certificate", "sggw.key", "{file} holds no PEM certificate"),
    ("ca_cert", "empty", "{file} holds no PEM certificate"),
    ("private_key", "other.key", "{file} is not the key of {cert}"),
    ("private_key", "sggw.pem", "{file} holds no unencrypted PEM private key"),
    ("private_key", "encrypted.key", "{file} holds no unencrypted PEM private key"),
], ids=["certificate-is-a-key", "ca-empty", "key-of-another", "key-is-a-cert", "key-encrypted"])
def test_files_that_do_not_fit(pki, key, wrong, fragment):
    reject(text(**good(pki, **{key: pki[wrong]})), "cluster.store_tls." + key,
           fragment.format(file=pki[wrong], cert=pki["sggw.pem"]))
