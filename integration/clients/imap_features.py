#!/usr/bin/env python3
"""Exercise egret's IMAP extensions with Python's imaplib, as a client would.

usage: imap_features.py SMTP_HOST:PORT IMAP_HOST:PORT USER PASSWORD ADDRESS

USER and PASSWORD log in; ADDRESS is the account's address, to which the
script sends mail over SMTP. The account must be new: an INBOX with no
messages, and the default mailboxes. Each check prints one line; the
first failure ends the script with status 1 and the reason.

  capability   the server announces every extension checked below
  namespace    NAMESPACE names one personal namespace with "/" as separator
  special-use  LIST (SPECIAL-USE) marks Sent, Drafts and Trash (RFC 6154)
  uidplus      APPEND answers APPENDUID, UID COPY answers COPYUID (RFC 4315)
               with the UIDVALIDITY that SELECT reported
  move         UID MOVE takes the message out of the source and answers
               COPYUID (RFC 6851); the target holds it with its flags
  list-status  LIST ... RETURN (STATUS (MESSAGES UNSEEN)) gives the right
               counts for every mailbox (RFC 5819)
  mutf7        a folder named 收件箱/航班 made with a modified UTF-7 name
               (RFC 3501 section 5.1.3, encoded here) is listed under that
               name, child of 收件箱, and takes a message
  quota        GETQUOTAROOT INBOX names a root and its STORAGE usage
               (RFC 9208)
  idle         a message delivered over SMTP while the client IDLEs is
               announced by an untagged EXISTS (RFC 2177)
  utf8         after ENABLE UTF8=ACCEPT (RFC 6855) a folder is created and
               listed under its UTF-8 name, and the folder made earlier
               in modified UTF-7 is listed in UTF-8 as the same folder

Standard library only.
"""

import base64
import imaplib
import re
import smtplib
import socket
import sys
import time

TIMEOUT = 60.0
IDLE_WAIT = 20.0


class Failure(Exception):
    """A check failed; the message says which and why."""


def check(cond, what):
    if not cond:
        raise Failure(what)


def ok(typ, data, what):
    if typ != "OK":
        raise Failure("%s: %s %r" % (what, typ, data))
    return data


# ---- modified UTF-7 (RFC 3501 section 5.1.3) ------------------------------

def mutf7_encode(name):
    """Answer name in IMAP's modified UTF-7, as ASCII text.

    Printable ASCII stands for itself, "&" is written "&-", and every run
    of other characters is UTF-16BE in base64 with "," for "/", no
    padding, between "&" and "-".
    """
    out = []
    run = []

    def flush():
        if run:
            raw = "".join(run).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode("ascii").rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(text):
    """Answer the mailbox name that modified UTF-7 text stands for."""
    def one(m):
        body = m.group(1)
        if body == "":
            return "&"
        b64 = body.replace(",", "/")
        b64 += "=" * (-len(b64) % 4)
        return base64.b64decode(b64).decode("utf-16-be")
    return re.sub(r"&([A-Za-z0-9+,]*)-", one, text)


# ---- response parsing ----------------------------------------------------

LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<sep>"[^"]*"|NIL) (?P<name>.*)$')


def parse_list(data):
    """Answer [(flags, name bytes)] from imaplib's LIST data.

    A name may come quoted, as an atom or as a literal, which imaplib
    hands over as a (line, literal) tuple.
    """
    out = []
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            line, name = item[0], item[1]
            m = LIST_LINE.match(line.rstrip(b"{0123456789}").rstrip() + b" x")
            check(m is not None, "LIST line not understood: %r" % (item,))
        else:
            m = LIST_LINE.match(item)
            check(m is not None, "LIST line not understood: %r" % (item,))
            name = m.group("name")
            if name.startswith(b'"'):
                name = name[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        flags = m.group("flags").decode("ascii").split()
        out.append((flags, name))
    return out


def code(imap, name):
    """Answer the last response code NAME the server sent, as text."""
    typ, data = imap.response(name)
    check(data and data[-1] is not None, "no [%s] response code" % name)
    return data[-1].decode("ascii")


def select(imap, mailbox, readonly=False):
    typ, data = imap.select(mailbox, readonly)
    ok(typ, data, "SELECT %s" % mailbox)
    return int(data[0])


def uidvalidity(imap):
    return int(code(imap, "UIDVALIDITY"))


# ---- the checks ----------------------------------------------------------

def check_capability(imap):
    # imaplib keeps the list from before LOGIN; ask again, as clients do.
    typ, data = imap.capability()
    ok(typ, data, "CAPABILITY")
    caps = set(data[-1].decode("ascii").upper().split())
    # imaplib.enable() looks for ENABLE in this list.
    imap.capabilities = tuple(sorted(caps))
    for want in ("MOVE", "UIDPLUS", "NAMESPACE", "SPECIAL-USE", "LIST-STATUS",
                 "ENABLE", "IDLE", "QUOTA"):
        check(want in caps, "CAPABILITY lacks %s: %s" % (want, sorted(caps)))
    print("capability: %s" % " ".join(sorted(caps)))


def check_namespace(imap):
    typ, data = imap.namespace()
    ok(typ, data, "NAMESPACE")
    line = data[0].decode("utf-8")
    m = re.match(r'^\(\("([^"]*)" "(.)"\)\) ', line)
    check(m is not None, "NAMESPACE: want one personal namespace, got %r" % line)
    check(m.group(2) == "/", "NAMESPACE separator %r, want /" % m.group(2))
    print("namespace: %s" % line)


def check_special_use(imap):
    typ, data = imap.list('""', '"*"')
    ok(typ, data, "LIST")
    roles = {}
    for flags, name in parse_list(data):
        for f in flags:
            if f in ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"):
                roles[f] = name.decode("ascii")
    for role, box in (("\\Sent", "Sent"), ("\\Drafts", "Drafts"), ("\\Trash", "Trash")):
        check(roles.get(role) == box, "LIST marks %s as %r, want %s: %r"
              % (role, roles.get(role), box, data))

    # RFC 6154 section 5.1: the selection option lists only those.
    typ, data = imap._simple_command("LIST", "(SPECIAL-USE)", '""', '"*"')
    ok(typ, data, "LIST (SPECIAL-USE)")
    typ, data = imap._untagged_response(typ, data, "LIST")
    names = sorted(n.decode("ascii") for _, n in parse_list(data))
    check(names == ["Drafts", "Sent", "Trash"],
          "LIST (SPECIAL-USE) lists %s, want Drafts, Sent, Trash" % names)
    print("special-use: %s" % sorted(roles.items()))


def message(subject, body="hello"):
    return ("From: <features@client.example>\r\n"
            "To: <someone@egretair.example>\r\n"
            "Subject: %s\r\n"
            "Message-ID: <%s.%f@client.example>\r\n"
            "\r\n%s\r\n" % (subject, subject.replace(" ", "-"), time.time(), body)).encode("ascii")


def check_uidplus_and_move(imap):
    ok(*imap.create("Work"), what="CREATE Work")
    select(imap, "Work")
    work_validity = uidvalidity(imap)

    appended = []
    for i, flags in enumerate(("(\\Seen)", "(\\Flagged)", None)):
        typ, data = imap.append("Work", flags, None, message("append %d" % i))
        ok(typ, data, "APPEND")
        m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
        check(m is not None, "APPEND answered no APPENDUID: %r" % data)
        check(int(m.group(1)) == work_validity,
              "APPENDUID validity %s, SELECT said %d" % (m.group(1), work_validity))
        appended.append(int(m.group(2)))
    check(appended == sorted(set(appended)), "APPENDUID UIDs not ascending: %s" % appended)

    ok(*imap.create("Archive"), what="CREATE Archive")
    typ, data = imap.status("Archive", "(UIDVALIDITY)")
    ok(typ, data, "STATUS Archive")
    archive_validity = int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))

    # UID COPY of the first message: COPYUID names source and target UIDs.
    select(imap, "Work")
    # imaplib answers the untagged COPY data; the tagged line's response
    # code is kept by its name.
    typ, data = imap.uid("COPY", str(appended[0]), "Archive")
    ok(typ, data, "UID COPY")
    copied = code(imap, "COPYUID").split()
    check(len(copied) == 3 and int(copied[0]) == archive_validity
          and copied[1] == str(appended[0]),
          "UID COPY COPYUID %r, want %d %d <uid>" % (copied, archive_validity, appended[0]))

    # UID MOVE of the second: gone from Work, in Archive, flags kept.
    imap.response("COPYUID")
    typ, data = imap.uid("MOVE", str(appended[1]), "Archive")
    ok(typ, data, "UID MOVE")
    moved = code(imap, "COPYUID").split()
    check(len(moved) == 3 and int(moved[0]) == archive_validity
          and moved[1] == str(appended[1]),
          "UID MOVE COPYUID %r, want %d %d <uid>" % (moved, archive_validity, appended[1]))
    typ, data = imap.uid("SEARCH", "ALL")
    ok(typ, data, "UID SEARCH")
    left = [int(x) for x in data[0].split()]
    check(left == [appended[0], appended[2]], "Work after MOVE holds UIDs %s" % left)

    select(imap, "Archive")
    typ, data = imap.uid("FETCH", moved[2], "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    ok(typ, data, "UID FETCH in Archive")
    check(b"\\Flagged" in data[0][0] and b"append 1" in data[0][1],
          "moved message in Archive: %r" % data)
    print("uidplus: APPENDUID %d %s, COPYUID %s" % (work_validity, appended, " ".join(copied)))
    print("move: UID %d -> Archive UID %s" % (appended[1], moved[2]))


def check_list_status(imap):
    typ, data = imap.list('""', '"*" RETURN (STATUS (MESSAGES UNSEEN))')
    ok(typ, data, "LIST RETURN (STATUS)")
    typ, st = imap.response("STATUS")
    got = {}
    for line in st:
        if isinstance(line, tuple):
            line = line[0] + line[1]
        m = re.match(rb'^("(?:[^"\\]|\\.)*"|\S+) \((.*)\)$', line)
        check(m is not None, "STATUS line not understood: %r" % line)
        name = m.group(1).strip(b'"').decode("ascii")
        items = m.group(2).split()
        got[name] = dict(zip((i.decode() for i in items[::2]), (int(i) for i in items[1::2])))
    want = {
        "Work": {"MESSAGES": 2, "UNSEEN": 1},
        "Archive": {"MESSAGES": 2, "UNSEEN": 1},
        "INBOX": {"MESSAGES": 0, "UNSEEN": 0},
        "Trash": {"MESSAGES": 0, "UNSEEN": 0},
    }
    for box, counts in want.items():
        check(got.get(box) == counts, "LIST-STATUS %s = %r, want %r (all: %r)"
              % (box, got.get(box), counts, got))
    listed = set(n.decode("ascii") for _, n in parse_list(data))
    check(set(got) <= listed, "STATUS for mailboxes not listed: %s" % (set(got) - listed))
    print("list-status: %s" % sorted(got.items()))


PARENT = "收件箱"
CHILD = "收件箱/航班"


def check_mutf7(imap):
    encoded = mutf7_encode(CHILD)
    check(encoded == "&ZTZO9nux-/&gipz7Q-", "mutf7_encode(%s) = %s" % (CHILD, encoded))
    check(mutf7_decode(encoded) == CHILD, "mutf7_decode(%s) is not %s" % (encoded, CHILD))
    ok(*imap.create(encoded), what="CREATE %s" % encoded)

    typ, data = imap.list('""', '"*"')
    ok(typ, data, "LIST")
    names = {mutf7_decode(n.decode("ascii")): flags for flags, n in parse_list(data)}
    check(CHILD in names, "LIST lacks %s after CREATE: %s" % (CHILD, sorted(names)))
    check(PARENT in names, "LIST lacks the parent %s of %s: %s" % (PARENT, CHILD, sorted(names)))
    check("\\HasChildren" in names[PARENT],
          "%s has flags %s, want \\HasChildren" % (PARENT, names[PARENT]))

    typ, data = imap.append(encoded, None, None, message("flight roster"))
    ok(typ, data, "APPEND to %s" % encoded)
    n = select(imap, encoded, readonly=True)
    check(n == 1, "%s holds %d messages after one APPEND" % (CHILD, n))
    imap.close()
    print("mutf7: %s created as %s and listed under its name" % (CHILD, encoded))


def check_quota(imap):
    typ, data = imap.getquotaroot("INBOX")
    ok(typ, data, "GETQUOTAROOT")
    roots, quotas = data[0], data[1]
    check(roots and roots[0].upper().startswith(b"INBOX"), "QUOTAROOT %r" % roots)
    line = quotas[0] if quotas else b""
    m = re.search(rb"\(STORAGE (\d+) (\d+)\)", line or b"")
    check(m is not None, "QUOTA gives no STORAGE usage: %r" % data)
    used, limit = int(m.group(1)), int(m.group(2))
    check(0 < used <= limit, "STORAGE usage %d of %d after four appends" % (used, limit))
    print("quota: %r" % data)


def check_idle(imap, smtp_addr, address):
    before = select(imap, "INBOX")
    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    line = imap.readline()
    check(line.startswith(b"+"), "IDLE answered %r, want a continuation" % line)

    host, port = smtp_addr.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=TIMEOUT) as s:
        s.sendmail("features@client.example", [address], message("during idle"))

    sock = imap.socket()
    sock.settimeout(IDLE_WAIT)
    seen = []
    try:
        while True:
            line = imap.readline()
            check(line, "connection closed during IDLE")
            seen.append(line)
            if re.match(rb"^\* %d EXISTS" % (before + 1), line):
                break
    except socket.timeout:
        raise Failure("no EXISTS within %.0fs of delivery during IDLE; got %r" % (IDLE_WAIT, seen))
    finally:
        sock.settimeout(TIMEOUT)
    imap.send(b"DONE\r\n")
    while True:
        line = imap.readline()
        check(line, "connection closed after DONE")
        if line.startswith(tag + b" "):
            check(line.startswith(tag + b" OK"), "IDLE ended with %r" % line)
            break
    print("idle: %s" % seen[-1].decode().strip())


def check_utf8(imap):
    # ENABLE is for the authenticated state (RFC 5161 section 3.1).
    if imap.state == "SELECTED":
        ok(*imap.close(), what="CLOSE")
    typ, data = imap.enable("UTF8=ACCEPT")
    ok(typ, data, "ENABLE UTF8=ACCEPT")
    typ, en = imap.response("ENABLED")
    check(en and b"UTF8=ACCEPT" in en[-1].upper(), "ENABLE answered no ENABLED UTF8=ACCEPT: %r" % en)

    # imaplib now sends str arguments as UTF-8 and quotes nothing itself.
    name = "收件箱/航班/2024年"
    ok(*imap.create('"%s"' % name), what="CREATE %s in UTF-8" % name)
    typ, data = imap.list('""', '"*"')
    ok(typ, data, "LIST after ENABLE")
    names = [n.decode("utf-8") for _, n in parse_list(data)]
    for want in (PARENT, CHILD, name):
        check(want in names, "LIST in UTF-8 lacks %s: %s" % (want, names))
    check(not any("&" in n for n in names), "LIST after ENABLE still sends modified UTF-7: %s" % names)

    typ, data = imap.select('"%s"' % CHILD, True)
    ok(typ, data, "SELECT %s in UTF-8" % CHILD)
    check(int(data[0]) == 1, "%s in UTF-8 holds %s messages, want the 1 appended under its mUTF-7 name"
          % (CHILD, data[0]))
    print("utf8: listed %s" % ", ".join(n for n in names if not n.isascii()))


def main():
    smtp_addr, imap_addr, user, password, address = sys.argv[1:6]
    host, port = imap_addr.rsplit(":", 1)
    imap = imaplib.IMAP4(host, int(port), timeout=TIMEOUT)
    try:
        ok(*imap.login(user, password), what="LOGIN")
        check_capability(imap)
        check_namespace(imap)
        check_special_use(imap)
        check_uidplus_and_move(imap)
        check_list_status(imap)
        check_mutf7(imap)
        check_quota(imap)
        check_idle(imap, smtp_addr, address)
        check_utf8(imap)
        imap.logout()
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    except imaplib.IMAP4.error as e:
        print("FAIL: imaplib: %s" % e)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
