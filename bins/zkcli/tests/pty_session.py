"""Drives zkcli through a pseudo-terminal as a person would: typing, tab, arrow keys.

usage: pty_session.py ZKCLI HOST:PORT   (exit status 0 when every expectation held)
"""
import os
import pty
import re
import select
import sys
import time

zkcli, addr = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(zkcli, [zkcli, "-server", addr])

buf = b""


def expect(pattern, timeout=10.0):
    """Waits until `pattern` (a regex) appears in the output read so far; returns the match."""
    global buf
    deadline = time.time() + timeout
    rx = re.compile(pattern.encode())
    while True:
        m = rx.search(buf)
        if m:
            buf = buf[m.end():]
            return m
        left = deadline - time.time()
        if left <= 0:
            print("TIMEOUT waiting for %r; output so far:\n%r" % (pattern, buf))
            sys.exit(1)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                print("EOF waiting for %r; output so far:\n%r" % (pattern, buf))
                sys.exit(1)
            buf += chunk


def send(keys):
    os.write(fd, keys.encode())


def prompt(state, n):
    return re.escape("[zk: %s(%s) %d] " % (addr, state, n))


expect("Welcome to ZooKeeper!")
# The first prompt may come before the session is up; an empty line asks again.
for _ in range(50):
    m = expect(r"\[zk: [^\]]*\] ")
    if b"CONNECTED" in m.group(0):
        break
    time.sleep(0.1)
    send("\r")
print("prompt ok")

send("create /pty hello\r")
expect("Created /pty")
expect(prompt("CONNECTED", 1))
print("create ok, count 1")

send("get /pt\t")          # path completion asks the server
expect("get /pty")
send("\r")
expect("hello")
expect(prompt("CONNECTED", 2))
print("path completion ok")

send("whoa\t")             # command completion
expect("whoami")
send("\r")
expect("Auth scheme: User")
expect(prompt("CONNECTED", 3))
print("command completion ok")

send("\x1b[A")             # up arrow: the previous line comes back
expect("whoami")
send("\r")
expect("Auth scheme: User")
expect(prompt("CONNECTED", 4))
print("history ok")

send("close\r")
expect(prompt("CLOSED", 5))
print("close ok")

send("connect %s\r" % addr)
expect(r"\[zk: [^\]]*6\] ")
send("ls /\r")
expect(r"\[pty, zookeeper\]")
expect(prompt("CONNECTED", 7))
print("connect ok")

send("quit\r")
_, status = os.waitpid(pid, 0)
if os.WEXITSTATUS(status) != 0:
    print("zkcli exited with %d" % os.WEXITSTATUS(status))
    sys.exit(1)
print("quit ok")
