"""One kazoo connection attempt: prints `connected` or `refused`.

usage: tls_probe.py HOST:PORT plain
       tls_probe.py HOST:PORT CA CERT KEY
"""
import sys

from kazoo.client import KazooClient

hosts = sys.argv[1]
if sys.argv[2] == "plain":
    zk = KazooClient(hosts=hosts, timeout=3)
else:
    ca, cert, key = sys.argv[2:5]
    zk = KazooClient(
        hosts=hosts,
        use_ssl=True,
        verify_certs=True,
        check_hostname=True,
        ca=ca,
        certfile=cert,
        keyfile=key,
        timeout=3,
    )
try:
    zk.start(timeout=3)
    zk.get("/")
    print("connected")
except Exception:
    print("refused")
finally:
    zk.stop()
    zk.close()
