#!/usr/bin/env python3
"""Time FETCH commands over one IMAP connection, for the comparison.

usage: imap_fetch.py HOST:PORT USER PASSWORD ROUNDS

Logs in with LOGIN (plaintext, loopback), EXAMINEs INBOX, then times
each command below ROUNDS times, after one untimed round that lets the
server build or load its index:

    FETCH 1:* (FLAGS ENVELOPE)
    FETCH 1:* (BODY.PEEK[])

A response is read as bytes, without parsing, until the tagged reply,
so the client's cost is the same for every server. Prints one line per
command: the best and median seconds, messages, and bytes read.
"""

import socket
import statistics
import sys
import time

COMMANDS = ("FETCH 1:* (FLAGS ENVELOPE)", "FETCH 1:* (BODY.PEEK[])")


class Conn:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=300)
        self.buf = b""
        self.n = 0
        self.read_until(b"\r\n")

    def read_until(self, end):
        while end not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("connection closed")
            self.buf += chunk
        i = self.buf.index(end) + len(end)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def command(self, text):
        """Send text; answer (seconds, bytes read, tagged line)."""
        self.n += 1
        tag = b"b%d" % self.n
        start = time.perf_counter()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        got = 0
        # As if the line before the reply had just ended.
        data = b"\r\n"
        # The tagged reply starts a line; keep only the tail to look in.
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("connection closed during %s" % text)
            got += len(chunk)
            data = data[-64:] + chunk
            i = data.rfind(b"\r\n" + tag + b" ")
            if i >= 0 and data.endswith(b"\r\n"):
                line = data[i + 2:]
                if line.count(b"\r\n") == 1:
                    break
        took = time.perf_counter() - start
        if not line.startswith(tag + b" OK"):
            raise SystemExit("%s: %r" % (text, line))
        return took, got


def main():
    addr, user, password, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    c = Conn(addr)
    c.command('LOGIN "%s" "%s"' % (user, password))
    c.sock.sendall(b"e1 EXAMINE INBOX\r\n")
    resp = c.read_until(b"\r\ne1 ")
    exists = [l for l in resp.split(b"\r\n") if l.endswith(b" EXISTS")]
    c.read_until(b"\r\n")
    messages = int(exists[0].split()[1])
    for cmd in COMMANDS:
        c.command(cmd)
        times = []
        for _ in range(rounds):
            took, got = c.command(cmd)
            times.append(took)
        print("%-28s best %.3fs median %.3fs  %d messages  %.1f MB" % (
            cmd, min(times), statistics.median(times), messages, got / 1e6))
    c.sock.sendall(b"z LOGOUT\r\n")


if __name__ == "__main__":
    main()
