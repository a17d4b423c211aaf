"""kazoo with SASL DIGEST-MD5 against users from a JAAS file.

usage: sasl.py HOST:PORT [enforced]
Prints one line per check; exits non-zero on the first failure.
"""
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.security import make_acl

hosts = sys.argv[1]
enforced = len(sys.argv) > 2 and sys.argv[2] == "enforced"


def check(name, cond):
    print(("ok   " if cond else "FAIL ") + name, flush=True)
    if not cond:
        sys.exit(1)


def client(user=None, password=None):
    opts = {}
    if user:
        opts["sasl_options"] = {
            "mechanism": "DIGEST-MD5",
            "username": user,
            "password": password,
        }
    return KazooClient(hosts=hosts, timeout=5, connection_retry=None, **opts)


bob = client("bob", "bobsecret")
bob.start(timeout=10)
check("DIGEST-MD5 with the right password connects", bob.connected)
bob.ensure_path("/sasl")
bob.create("/sasl/bob-only", b"mine", acl=[make_acl("sasl", "bob", all=True)])
check("a sasl ACL admits its user", bob.get("/sasl/bob-only")[0] == b"mine")
check("the ACL names the user", bob.get_acls("/sasl/bob-only")[0][0].id.id == "bob")

# The wrong password: the server answers AUTHFAILED and drops the connection.
wrong = client("bob", "not-the-password")
try:
    # kazoo reports CONNECTED before its SASL exchange; the failure follows at once.
    wrong.start(timeout=5)
    for _ in range(50):
        if not wrong.connected:
            break
        time.sleep(0.1)
    ok = not wrong.connected
except (AuthFailedError, Exception):
    ok = True
finally:
    wrong.stop()
    wrong.close()
check("a wrong password is refused", ok)

stranger = client()
if enforced:
    # enforce.auth.enabled: an unauthenticated session gets SESSIONCLOSEDREQUIRESASLAUTH.
    try:
        stranger.start(timeout=5)
        stranger.get("/")
        ok = False
    except SessionClosedRequireSaslError:
        ok = True
    check("an unauthenticated session is refused (-124)", ok)
else:
    stranger.start(timeout=10)
    try:
        stranger.get("/sasl/bob-only")
        ok = False
    except NoAuthError:
        ok = True
    check("another session is kept out by the sasl ACL", ok)
stranger.stop()
stranger.close()

bob.delete("/sasl", recursive=True)
bob.stop()
bob.close()
print("all SASL checks passed")
