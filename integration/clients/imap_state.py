#!/usr/bin/env python3
"""Mark and record the IMAP state of many accounts with Python's imaplib.

usage: imap_state.py mark HOST:PORT PASSWORD LOGIN...
       imap_state.py dump HOST:PORT PASSWORD LOGIN...

Every LOGIN signs in with the same PASSWORD.

mark gives each account's INBOX, which must hold three or more messages,
the state a mail client leaves behind: message 1 \\Seen, message 2
\\Flagged \\Answered $Forwarded, and copies of messages 1 and 2 in a new
folder "归档" (so a mailbox with a non-ASCII name is on disk too), where
the copy of 2 is then expunged: that folder's UIDNEXT is above its
highest UID.

dump prints one JSON object: for each login, for each mailbox, its
UIDVALIDITY, UIDNEXT and [UID, sorted flags] of every message. Two dumps
of an account whose index was lost and rebuilt must be equal: that is
what lets a client keep its cache.

Standard library only.
"""

import base64
import imaplib
import json
import re
import sys

TIMEOUT = 60.0
ARCHIVE = "归档"


def fail(why):
    print("FAIL: %s" % why)
    sys.exit(1)


def ok(res, what):
    typ, data = res
    if typ != "OK":
        fail("%s: %s %r" % (what, typ, data))
    return data


def mutf7(name):
    """Answer name in modified UTF-7 (RFC 3501 section 5.1.3)."""
    out, run = [], []

    def flush():
        if run:
            b64 = base64.b64encode("".join(run).encode("utf-16-be")).decode()
            out.append("&" + b64.rstrip("=").replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def connect(addr, login, password):
    host, port = addr.rsplit(":", 1)
    imap = imaplib.IMAP4(host, int(port), timeout=TIMEOUT)
    ok(imap.login(login, password), "LOGIN %s" % login)
    return imap


def mark(imap, login):
    n = int(ok(imap.select("INBOX"), "SELECT INBOX %s" % login)[0])
    if n < 3:
        fail("%s: INBOX holds %d messages, want 3 or more" % (login, n))
    ok(imap.store("1", "+FLAGS", "(\\Seen)"), "STORE 1")
    ok(imap.store("2", "+FLAGS", "(\\Flagged \\Answered $Forwarded)"), "STORE 2")
    box = mutf7(ARCHIVE)
    ok(imap.create(box), "CREATE %s" % ARCHIVE)
    ok(imap.copy("1:2", box), "COPY to %s" % ARCHIVE)
    ok(imap.select(box), "SELECT %s" % ARCHIVE)
    ok(imap.store("2", "+FLAGS", "(\\Deleted)"), "STORE in %s" % ARCHIVE)
    # CLOSE expunges what is \Deleted (RFC 3501 section 6.4.2).
    ok(imap.close(), "CLOSE %s" % ARCHIVE)


NAME = re.compile(rb'\) "/" (?:"((?:[^"\\]|\\.)*)"|(\S+))$')
FETCH = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)")


def mailboxes(imap):
    names = []
    for line in ok(imap.list('""', '"*"'), "LIST"):
        m = NAME.search(line)
        if m is None:
            fail("LIST line not understood: %r" % line)
        names.append((m.group(1) or m.group(2)).decode("ascii"))
    return sorted(names)


def dump(imap):
    state = {}
    for box in mailboxes(imap):
        st = ok(imap.status('"%s"' % box, "(UIDVALIDITY UIDNEXT)"), "STATUS %s" % box)[0]
        validity = int(re.search(rb"UIDVALIDITY (\d+)", st).group(1))
        uidnext = int(re.search(rb"UIDNEXT (\d+)", st).group(1))
        n = int(ok(imap.select('"%s"' % box, True), "EXAMINE %s" % box)[0])
        msgs = []
        if n:
            for item in ok(imap.fetch("1:*", "(UID FLAGS)"), "FETCH %s" % box):
                m = FETCH.search(item)
                if m is None:
                    fail("FETCH line not understood: %r" % item)
                uid = int(m.group(1) or m.group(4))
                flags = sorted((m.group(2) or m.group(3) or b"").decode().split())
                # \Recent is the session's, not the message's.
                msgs.append([uid, [f for f in flags if f != "\\Recent"]])
        imap.close()
        state[box] = {"uidvalidity": validity, "uidnext": uidnext, "messages": msgs}
    return state


def main():
    if len(sys.argv) < 5 or sys.argv[1] not in ("mark", "dump"):
        print(__doc__)
        return 2
    what, addr, password, logins = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    out = {}
    for login in logins:
        imap = connect(addr, login, password)
        if what == "mark":
            mark(imap, login)
        else:
            out[login] = dump(imap)
        imap.logout()
    if what == "dump":
        json.dump(out, sys.stdout, sort_keys=True, ensure_ascii=False)
        print()
    else:
        print("marked %d accounts" % len(logins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
