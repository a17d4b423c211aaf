#!/usr/bin/env python3
"""Sends a four-letter word to the server on 127.0.0.1:PORT and prints its answer (nothing
when it does not answer), for the benchmark scripts.

    scripts/four.py PORT ruok          # imok
    scripts/four.py PORT srvr --mode   # only the value of the Mode line: leader, follower...
"""
import socket
import sys


def four(port, word):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")
    except OSError:
        return ""


if __name__ == "__main__":
    answer = four(int(sys.argv[1]), sys.argv[2])
    if "--mode" in sys.argv[3:]:
        answer = "\n".join(l[6:] for l in answer.splitlines() if l.startswith("Mode: "))
    try:
        print(answer, flush=True)
    except BrokenPipeError:
        # A reader that saw enough (grep -q) closed the pipe: not an error.
        sys.stderr.close()
