#!/usr/bin/env python3
"""Read a message over IMAP, signed in with an OAuth access token.

usage: oauth_read.py IMAP_HOST:PORT USER TOKEN SUBJECT

Checks, exiting 1 with the reason on the first failure, for each of
AUTHENTICATE OAUTHBEARER (RFC 7628) and XOAUTH2 in turn (imaplib,
loopback, no TLS):

  * the server advertises the mechanism, and signing in with the token
    works; INBOX then holds a message whose Subject is SUBJECT;
  * the same mechanism with a damaged token is refused, after the JSON
    error challenge (status "invalid_token" for OAUTHBEARER, "401" for
    XOAUTH2) and the client's dummy response.

Standard library only.
"""

import imaplib
import json
import sys

TIMEOUT = 60.0


class Failure(Exception):
    """A check failed; the message says which and why."""


def split(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def client_response(mech, user, token):
    if mech == "OAUTHBEARER":
        return "n,a=%s,\x01auth=Bearer %s\x01\x01" % (user, token)
    return "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)


# The error status each mechanism's challenge carries.
STATUS = {"OAUTHBEARER": "invalid_token", "XOAUTH2": "401"}

# The dummy response that ends a refused exchange.
DUMMY = {"OAUTHBEARER": "\x01", "XOAUTH2": ""}


def check_read(host, port, mech, user, token, subject):
    imap = imaplib.IMAP4(host, port, timeout=TIMEOUT)
    if "AUTH=" + mech not in imap.capabilities:
        raise Failure("IMAP does not advertise AUTH=%s: %s" % (mech, sorted(imap.capabilities)))
    typ, _ = imap.authenticate(mech, lambda _: client_response(mech, user, token))
    if typ != "OK":
        raise Failure("AUTHENTICATE %s: %s" % (mech, typ))
    typ, _ = imap.select("INBOX", readonly=True)
    if typ != "OK":
        raise Failure("SELECT INBOX after %s: %s" % (mech, typ))
    typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    if typ != "OK":
        raise Failure("FETCH after %s: %s" % (mech, typ))
    headers = b"".join(part[1] for part in data if isinstance(part, tuple))
    if ("Subject: " + subject).encode() not in headers:
        raise Failure("INBOX read with %s has no message %r: %r" % (mech, subject, headers))
    imap.logout()


def check_refused(host, port, mech, user, token):
    imap = imaplib.IMAP4(host, port, timeout=TIMEOUT)
    challenges = []

    def damaged(challenge):
        if challenge:
            challenges.append(challenge)
            return DUMMY[mech]
        return client_response(mech, user, token[:-4] + "AAAA")

    try:
        imap.authenticate(mech, damaged)
    except imaplib.IMAP4.error:
        pass
    else:
        raise Failure("%s accepted a damaged token" % mech)
    if not challenges or json.loads(challenges[0]).get("status") != STATUS[mech]:
        raise Failure("%s: no error challenge before the refusal: %r" % (mech, challenges))
    imap.logout()


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    addr, user, token, subject = sys.argv[1:]
    host, port = split(addr)
    try:
        for mech in ("OAUTHBEARER", "XOAUTH2"):
            check_read(host, port, mech, user, token, subject)
            check_refused(host, port, mech, user, token)
    except Failure as e:
        print("FAIL:", e, file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
