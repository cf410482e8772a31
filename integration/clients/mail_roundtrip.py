#!/usr/bin/env python3
"""Send mail to egret with Python's smtplib and read it back with imaplib.

usage: mail_roundtrip.py SMTP_HOST:PORT IMAP_HOST:PORT USER PASSWORD RCPT FIXTURE_DIR

USER and PASSWORD log in to IMAP; RCPT is the address whose INBOX they
open, and it must be empty at the start. Every *.eml and *.eml.gz file in
FIXTURE_DIR is sent, in name order, as the bytes it holds. The script
then checks, and exits 1 with the reason on the first failure:

  * a recipient that does not exist is refused at RCPT with 550, and the
    refused message is not delivered;
  * a wrong password is refused; plaintext LOGIN works from loopback;
  * over STARTTLS (certificate not verified: the node's is self-signed),
    LOGIN and AUTHENTICATE PLAIN both work;
  * the INBOX holds one message per fixture, and each is exactly
        trace fields + expected(fixture)
    where the trace fields are Return-Path (first, naming the envelope
    sender) and at least one Received (RFC 5321 section 4.4), and
    expected() is below: what the client sent, with bare LF made CRLF;
  * RFC822.SIZE of each message is its length in octets.

Standard library only, so it runs wherever python3 does.
"""

import gzip
import imaplib
import os
import re
import secrets
import smtplib
import ssl
import sys
import time

SENDER = "roundtrip@client.example"
# How long delivered mail may take to show in the INBOX. egret stores a
# message before it answers 250, so it should be there at once.
DELIVERY_WAIT = 30.0
TIMEOUT = 120.0

BARE_LF = re.compile(rb"(?<!\r)\n")
TRACE_FIELD = re.compile(rb"(?i)(return-path|received):")
MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\r\n]*>)")


class Failure(Exception):
    """A check failed; the message says which and why."""


def expected(raw):
    """Answer the bytes egret must keep for a fixture sent by smtplib.

    With bytes, smtplib.SMTP.data (CPython 3.11) sends the message as it
    is: it doubles a dot at the start of a line and, when the data does
    not end in CRLF, adds one CRLF before the closing ".\\r\\n". It
    converts line ends only for str input. The server undoes the dot
    doubling, and the CRLF before "." ends the message's last line
    (RFC 5321 section 4.1.1.4), so the content it receives is
    raw + CRLF when raw does not end in CRLF, else raw.

    A fixture ending in a bare LF therefore arrives as "...\\n\\r\\n": its
    last line ended by LF, then an empty line. Whether a server takes a
    bare LF for a line end or for a data byte, that is one more line than
    the file shows, and making bare LF into CRLF gives "...\\r\\n\\r\\n".
    That extra empty line is what the client sent, so the server must
    keep it: dropping it would be changing the message.
    """
    sent = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    return BARE_LF.sub(b"\r\n", sent)


def load_fixtures(folder):
    """Answer [(name, bytes)] for every fixture message, in name order."""
    out = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".eml"):
            with open(path, "rb") as f:
                out.append((name, f.read()))
        elif name.endswith(".eml.gz"):
            with gzip.open(path, "rb") as f:
                out.append((name, f.read()))
    if not out:
        raise Failure("no .eml or .eml.gz file in %s" % folder)
    return out


def host_port(arg):
    host, _, port = arg.rpartition(":")
    return host, int(port)


def unverified_tls():
    """A TLS context that does not check the certificate: the test node
    makes its own, self-signed, on first start."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---- SMTP ----------------------------------------------------------------


def check_unknown_recipient_refused(smtp, rcpt):
    """Send to an address no account has; RCPT must answer 550, which
    smtplib raises as SMTPRecipientsRefused. Answers the Message-ID of
    the refused message, to look for in the INBOX later."""
    domain = rcpt.rpartition("@")[2]
    nobody = "nobody-%s@%s" % (secrets.token_hex(6), domain)
    msgid = "<refused-%s@client.example>" % secrets.token_hex(8)
    msg = (
        "From: %s\r\nTo: %s\r\nSubject: must be refused\r\n"
        "Message-ID: %s\r\n\r\nThis recipient does not exist.\r\n" % (SENDER, nobody, msgid)
    ).encode()
    try:
        smtp.sendmail(SENDER, [nobody], msg)
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients.get(nobody, (None, b""))
        if code != 550:
            raise Failure("RCPT TO:<%s> answered %s %r, want 550" % (nobody, code, text))
        print("smtp: RCPT TO:<%s> refused: %d %s" % (nobody, code, text.decode(errors="replace")))
        return msgid.encode()
    raise Failure("mail to %s, an address no account has, was accepted" % nobody)


def send_all(smtp_addr, rcpt, fixtures):
    """Send each fixture in one SMTP session; answers the refused
    message's Message-ID."""
    host, port = host_port(smtp_addr)
    with smtplib.SMTP(host, port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("roundtrip.client.example")
        refused_id = check_unknown_recipient_refused(smtp, rcpt)

        eight_bit = smtp.has_extn("8bitmime")
        for name, raw in fixtures:
            opts = []
            if eight_bit and any(b > 0x7F for b in raw):
                opts.append("BODY=8BITMIME")
            start = time.monotonic()
            refused = smtp.sendmail(SENDER, [rcpt], raw, mail_options=opts)
            if refused:
                raise Failure("%s: recipient refused: %r" % (name, refused))
            took = time.monotonic() - start
            print("smtp: sent %-24s %9d bytes in %.2fs" % (name, len(raw), took))
    return refused_id


# ---- IMAP ----------------------------------------------------------------


def imap_connect(imap_addr):
    host, port = host_port(imap_addr)
    return imaplib.IMAP4(host, port, timeout=TIMEOUT)


def starttls(imap):
    if "STARTTLS" not in imap.capabilities:
        raise Failure("IMAP does not offer STARTTLS: %s" % " ".join(imap.capabilities))
    imap.starttls(ssl_context=unverified_tls())


def inbox_count(imap):
    typ, data = imap.select("INBOX", readonly=True)
    if typ != "OK":
        raise Failure("EXAMINE INBOX: %s %r" % (typ, data))
    return int(data[0])


def check_before_mail(imap_addr, user, password):
    """Plaintext from loopback: a wrong password is refused, the right
    one logs in, and the INBOX is empty."""
    imap = imap_connect(imap_addr)
    try:
        try:
            imap.login(user, password + "x")
        except imaplib.IMAP4.error:
            pass
        else:
            raise Failure("IMAP LOGIN with a wrong password for %s succeeded" % user)
        try:
            imap.login(user, password)
        except imaplib.IMAP4.error as e:
            raise Failure("plaintext IMAP LOGIN from loopback as %s: %s" % (user, e))
        n = inbox_count(imap)
        if n != 0:
            raise Failure("INBOX of %s holds %d messages before any was sent, want 0" % (user, n))
        print("imap: plaintext LOGIN as %s, INBOX empty" % user)
    finally:
        imap.logout()


def check_authenticate_plain(imap_addr, user, password, want):
    """AUTHENTICATE PLAIN (RFC 4616) after STARTTLS, as mail apps log in."""
    imap = imap_connect(imap_addr)
    try:
        starttls(imap)
        if "AUTH=PLAIN" not in imap.capabilities:
            caps = " ".join(imap.capabilities)
            raise Failure("IMAP offers no AUTH=PLAIN after STARTTLS: %s" % caps)
        token = b"\0" + user.encode() + b"\0" + password.encode()
        try:
            imap.authenticate("PLAIN", lambda _challenge: token)
        except imaplib.IMAP4.error as e:
            raise Failure("AUTHENTICATE PLAIN as %s: %s" % (user, e))
        n = inbox_count(imap)
        if n != want:
            raise Failure("after AUTHENTICATE PLAIN the INBOX holds %d messages, want %d"
                          % (n, want))
        print("imap: STARTTLS, AUTHENTICATE PLAIN as %s, INBOX holds %d" % (user, n))
    finally:
        imap.logout()


def fetch_all(imap, want):
    """Wait until the INBOX holds want messages, then answer
    [(uid, size, bytes)] in UID order."""
    deadline = time.monotonic() + DELIVERY_WAIT
    n = inbox_count(imap)
    while n < want and time.monotonic() < deadline:
        time.sleep(0.2)
        n = inbox_count(imap)
    if n != want:
        raise Failure("INBOX holds %d messages, want %d (one per fixture)" % (n, want))

    typ, data = imap.uid("SEARCH", None, "ALL")
    if typ != "OK":
        raise Failure("UID SEARCH ALL: %s %r" % (typ, data))
    uids = [int(u) for u in data[0].split()]
    if len(uids) != want:
        raise Failure("UID SEARCH ALL found %d messages, want %d" % (len(uids), want))

    out = []
    for uid in sorted(uids):
        typ, data = imap.uid("FETCH", str(uid), "(RFC822.SIZE BODY.PEEK[])")
        if typ != "OK":
            raise Failure("UID FETCH %d: %s %r" % (uid, typ, data))
        out.append((uid,) + parse_fetch(uid, data))
    return out


def parse_fetch(uid, data):
    """Answer (RFC822.SIZE, BODY[] bytes) from imaplib's FETCH data: a
    tuple per literal, and bytes for the text after it."""
    meta = b""
    body = None
    for part in data:
        if isinstance(part, tuple):
            meta += part[0]
            if b"BODY[]" in part[0].upper():
                body = part[1]
        elif isinstance(part, bytes):
            meta += part
    m = re.search(rb"RFC822\.SIZE (\d+)", meta, re.I)
    if body is None or m is None:
        raise Failure("UID FETCH %d: no BODY[] or RFC822.SIZE in %r" % (uid, meta[:200]))
    return int(m.group(1)), body


# ---- comparing -----------------------------------------------------------


def parse_trace(prefix):
    """Split the bytes before the sent message into header fields; each
    must be Return-Path or Received, in CRLF lines, folded or not."""
    fields = []
    i = 0
    while i < len(prefix):
        end = prefix.find(b"\r\n", i)
        if end < 0:
            raise Failure("trace fields end without CRLF: %r" % prefix[i : i + 80])
        line = prefix[i:end]
        if b"\n" in line or b"\r" in line:
            raise Failure("bare CR or LF in trace fields: %r" % line[:80])
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise Failure("trace starts with a continuation line: %r" % line[:80])
            fields[-1] += b"\r\n" + line
        elif TRACE_FIELD.match(line):
            fields.append(line)
        else:
            raise Failure("not a Return-Path or Received field: %r" % line[:80])
        i = end + 2
    return fields


def check_trace(fields):
    """RFC 5321 section 4.4: every SMTP server adds Received; the one
    that delivers finally adds Return-Path, with the envelope sender, at
    the top."""
    names = [f.split(b":", 1)[0].lower() for f in fields]
    if b"received" not in names:
        raise Failure("no Received field in front of the message: %r" % fields)
    if b"return-path" in names:
        if names.index(b"return-path") != 0 or names.count(b"return-path") != 1:
            raise Failure("Return-Path must be the one first field: %r" % fields)
        value = fields[0].split(b":", 1)[1].strip()
        if value != ("<%s>" % SENDER).encode():
            raise Failure("Return-Path is %r, want <%s>" % (value, SENDER))


def matches(stored, want):
    """Answer the trace fields when stored is trace + want, else None."""
    if len(stored) < len(want) or not stored.endswith(want):
        return None
    try:
        return parse_trace(stored[: len(stored) - len(want)])
    except Failure:
        return None


def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def explain(uid, stored, name, want):
    """Describe how a stored message differs from the fixture it should
    be: the first differing offset after the trace fields."""
    # Skip what reads as trace fields, then compare what follows.
    i = 0
    while True:
        end = stored.find(b"\r\n", i)
        if end < 0:
            break
        line = stored[i:end]
        if TRACE_FIELD.match(line) or (i > 0 and line[:1] in (b" ", b"\t")):
            i = end + 2
            continue
        break
    body = stored[i:]
    at = first_difference(body, want)
    lo, hi = max(0, at - 20), at + 40
    return (
        "UID %d does not match %s: stored %d bytes, %d after %d bytes of trace;"
        " want %d after the trace\n"
        "  first difference at offset %d of the message (%d of the stored bytes):\n"
        "  stored:   %r\n"
        "  expected: %r"
        % (uid, name, len(stored), len(body), i, len(want),
           at, i + at, body[lo:hi], want[lo:hi])
    )


def compare(stored_msgs, fixtures, refused_id):
    wants = [(name, expected(raw)) for name, raw in fixtures]
    unmatched = list(range(len(wants)))
    leftovers = []
    for pos, (uid, size, stored) in enumerate(stored_msgs):
        if size != len(stored):
            raise Failure("UID %d: RFC822.SIZE %d, but BODY[] has %d bytes"
                          % (uid, size, len(stored)))
        if refused_id in stored:
            raise Failure("UID %d is the message whose recipient was refused" % uid)
        # Try the fixture sent in the same position first.
        order = sorted(unmatched, key=lambda j: (j != pos, j))
        for j in order:
            fields = matches(stored, wants[j][1])
            if fields is not None:
                check_trace(fields)
                unmatched.remove(j)
                print("imap: UID %-3d = %-24s %9d bytes, %d trace fields"
                      % (uid, wants[j][0], len(stored), len(fields)))
                break
        else:
            leftovers.append((pos, uid, stored))

    if not leftovers:
        return
    # Pair each stored message left over with a fixture: by Message-ID,
    # else by position, and show where they part.
    reasons = []
    for pos, uid, stored in leftovers:
        m = MESSAGE_ID.search(stored)
        pick = None
        for j in unmatched:
            wm = MESSAGE_ID.search(wants[j][1])
            if m and wm and m.group(1) == wm.group(1):
                pick = j
                break
        if pick is None and pos in unmatched:
            pick = pos
        if pick is None and unmatched:
            pick = unmatched[0]
        if pick is None:
            reasons.append("UID %d matches no fixture" % uid)
            continue
        unmatched.remove(pick)
        reasons.append(explain(uid, stored, wants[pick][0], wants[pick][1]))
    raise Failure("%d of %d messages differ from what was sent:\n%s"
                  % (len(leftovers), len(wants), "\n".join(reasons)))


def main(argv):
    if len(argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    smtp_addr, imap_addr, user, password, rcpt, folder = argv[1:]
    fixtures = load_fixtures(folder)
    start = time.monotonic()
    try:
        check_before_mail(imap_addr, user, password)
        refused_id = send_all(smtp_addr, rcpt, fixtures)

        imap = imap_connect(imap_addr)
        try:
            starttls(imap)
            try:
                imap.login(user, password)
            except imaplib.IMAP4.error as e:
                raise Failure("IMAP LOGIN after STARTTLS as %s: %s" % (user, e))
            print("imap: STARTTLS, LOGIN as %s" % user)
            stored = fetch_all(imap, len(fixtures))
            compare(stored, fixtures, refused_id)
            # Nothing more may have arrived meanwhile: the refused message
            # had no DATA to deliver.
            n = inbox_count(imap)
            if n != len(fixtures):
                raise Failure("INBOX holds %d messages after the check, want %d"
                              % (n, len(fixtures)))
        finally:
            imap.logout()

        check_authenticate_plain(imap_addr, user, password, len(fixtures))
    except Failure as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error) as e:
        print("FAIL: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    took = time.monotonic() - start
    print("ok: %d messages sent and read back unchanged in %.1fs" % (len(fixtures), took))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
