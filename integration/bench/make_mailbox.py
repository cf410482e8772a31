#!/usr/bin/env python3
"""Write a Maildir of generated messages for the IMAP comparison.

usage: make_mailbox.py DIR COUNT

DIR/cur, DIR/new and DIR/tmp are made; COUNT messages go to DIR/cur
with plain Maildir names (time.seq.host:2,), a third of them \\Seen.
Sizes spread from 1 KB to 40 KB (mean near 8 KB), with a Chinese
subject in every fifth. The same seed gives the same messages, so egret
and Dovecot read identical bytes.
"""

import base64
import os
import random
import sys

WORDS = ("flight crew roster gate delay boarding cargo manifest fuel "
         "weather runway taxi pushback catering cabin briefing duty").split()


def body(rnd, size):
    lines = []
    total = 0
    while total < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(6, 12)))
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines)


def main():
    folder, count = sys.argv[1], int(sys.argv[2])
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    rnd = random.Random(5101)
    base = 1700000000
    for i in range(count):
        size = min(40000, int(rnd.expovariate(1 / 7000)) + 1000)
        subject = "roster %d %s" % (i, rnd.choice(WORDS))
        if i % 5 == 0:
            word = base64.b64encode("航班 %d 延误".encode()).decode()
            subject = "=?UTF-8?B?%s?=" % word
        msg = ("Return-Path: <ops@remote.example>\r\n"
               "From: Dispatch <ops@remote.example>\r\n"
               "To: crew@egretair.example\r\n"
               "Subject: %s\r\n"
               "Date: Mon, 4 Nov 2024 08:%02d:%02d +0800\r\n"
               "Message-ID: <bench.%d@remote.example>\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "\r\n%s\r\n" % (subject, i // 60 % 60, i % 60, i, body(rnd, size)))
        data = msg.encode()
        flags = "S" if i % 3 == 0 else ""
        name = "%d.M%dP1.bench,S=%d:2,%s" % (base + i, i, len(data), flags)
        with open(os.path.join(folder, "cur", name), "wb") as f:
            f.write(data)
        os.utime(os.path.join(folder, "cur", name), (base + i, base + i))
    print("wrote %d messages to %s" % (count, folder))


if __name__ == "__main__":
    main()
