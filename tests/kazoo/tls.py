"""kazoo over TLS against a server with ssl.clientAuth=need.

usage: tls.py HOST:PORT CA CERT KEY OTHER_CERT OTHER_KEY SUBJECT_DN
Prints one line per check; exits non-zero on the first failure.
"""
import sys
import threading

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl, make_digest_acl

hosts, ca, cert, key, other_cert, other_key, dn = sys.argv[1:8]
is_super = len(sys.argv) > 8 and sys.argv[8] == "super"


def client(certfile=None, keyfile=None, timeout=5):
    return KazooClient(
        hosts=hosts,
        use_ssl=True,
        verify_certs=True,
        check_hostname=True,
        ca=ca,
        certfile=certfile,
        keyfile=keyfile,
        timeout=timeout,
    )


def check(name, cond):
    print(("ok   " if cond else "FAIL ") + name, flush=True)
    if not cond:
        sys.exit(1)


zk = client(cert, key)
zk.start(timeout=10)
check("connected over TLS with a client certificate", zk.connected)

zk.create("/tls/a", b"one", makepath=True)
data, stat = zk.get("/tls/a")
check("create and get", data == b"one" and stat.version == 0)
zk.set("/tls/a", b"two")
check("set", zk.get("/tls/a")[0] == b"two")

fired = threading.Event()
zk.get("/tls/a", watch=lambda e: fired.set())
zk.set("/tls/a", b"three")
check("data watch fires", fired.wait(10))

# The certificate's subject is the session's x509 identity: an ACL naming it lets this
# client in and keeps a plain-text-free stranger out.
acl = make_acl("x509", dn, all=True)
zk.create("/tls/mine", b"secret", acl=[acl])
# A node only some digest user may read: a superuser certificate reads it anyway.
zk.create("/tls/locked", b"x", acl=[make_digest_acl("nobody", "pw", all=True)])
try:
    zk.get("/tls/locked")
    can_read = True
except NoAuthError:
    can_read = False
check("X509AuthenticationProvider.superUser reads everything" if is_super
      else "an ordinary certificate is kept out of a digest ACL", can_read == is_super)
check("x509 ACL admits its subject", zk.get("/tls/mine")[0] == b"secret")
check("x509 ACL as stored", zk.get_acls("/tls/mine")[0][0].id.id == dn)
if is_super:
    zk.delete("/tls", recursive=True)
else:
    zk.delete("/tls/a")
    zk.delete("/tls/mine")
zk.stop()
zk.close()

def is_refused(c):
    """Whether the server refuses this client's TLS connection."""
    try:
        c.start(timeout=3)
        return False
    except Exception:
        return True
    finally:
        c.stop()
        c.close()


check("no client certificate is refused", is_refused(client(timeout=3)))
check(
    "a certificate from another CA is refused",
    is_refused(client(other_cert, other_key, timeout=3)),
)
print("all TLS checks passed")
