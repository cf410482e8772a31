#!/usr/bin/env python3
"""Sign in to egret's IMAP and submission with an OAuth access token.

usage: oauth_mail.py IMAP_HOST:PORT SUBMIT_HOST:PORT USER TOKEN

Checks, exiting 1 with the reason on the first failure:

  * IMAP (imaplib, loopback, no TLS) advertises AUTH=OAUTHBEARER and
    AUTH=XOAUTH2, and AUTHENTICATE OAUTHBEARER (RFC 7628) with the token
    signs in: SELECT INBOX works;
  * AUTHENTICATE OAUTHBEARER with a damaged token is refused, after the
    JSON error challenge the RFC asks for (section 3.2.2);
  * submission (smtplib, after STARTTLS) takes AUTH XOAUTH2 with the
    token (235), and refuses it for another user.

Standard library only.
"""

import base64
import imaplib
import json
import smtplib
import ssl
import sys

TIMEOUT = 60.0


class Failure(Exception):
    """A check failed; the message says which and why."""


def split(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def bearer(user, token):
    return "n,a=%s,\x01auth=Bearer %s\x01\x01" % (user, token)


def check_imap(addr, user, token):
    host, port = split(addr)
    imap = imaplib.IMAP4(host, port, timeout=TIMEOUT)
    caps = set(imap.capabilities)
    for want in ("AUTH=OAUTHBEARER", "AUTH=XOAUTH2"):
        if want not in caps:
            raise Failure("IMAP does not advertise %s: %s" % (want, sorted(caps)))
    typ, _ = imap.authenticate("OAUTHBEARER", lambda _: bearer(user, token))
    if typ != "OK":
        raise Failure("AUTHENTICATE OAUTHBEARER: %s" % typ)
    typ, _ = imap.select("INBOX")
    if typ != "OK":
        raise Failure("SELECT INBOX after token login: %s" % typ)
    imap.logout()

    imap = imaplib.IMAP4(host, port, timeout=TIMEOUT)
    challenges = []

    def damaged(challenge):
        if challenge:
            challenges.append(challenge)
            return "\x01"
        return bearer(user, token[:-4] + "AAAA")

    try:
        imap.authenticate("OAUTHBEARER", damaged)
    except imaplib.IMAP4.error:
        pass
    else:
        raise Failure("IMAP accepted a damaged token")
    if not challenges or json.loads(challenges[0]).get("status") != "invalid_token":
        raise Failure("no RFC 7628 error challenge before the refusal: %r" % challenges)
    imap.logout()


def check_submission(addr, user, token):
    host, port = split(addr)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    smtp = smtplib.SMTP(host, port, timeout=TIMEOUT)
    smtp.starttls(context=ctx)
    smtp.ehlo()
    mechs = smtp.esmtp_features.get("auth", "").upper().split()
    if "XOAUTH2" not in mechs or "OAUTHBEARER" not in mechs:
        raise Failure("submission does not offer XOAUTH2 and OAUTHBEARER: %s" % mechs)
    code, _ = smtp.auth("XOAUTH2", lambda _=None: "user=%s\x01auth=Bearer %s\x01\x01" % (user, token))
    if code != 235:
        raise Failure("AUTH XOAUTH2: %d" % code)
    smtp.quit()

    smtp = smtplib.SMTP(host, port, timeout=TIMEOUT)
    smtp.starttls(context=ctx)
    smtp.ehlo()
    try:
        smtp.auth("XOAUTH2", lambda c=None: "" if c else
                  "user=%s\x01auth=Bearer %s\x01\x01" % ("postmaster", token))
    except smtplib.SMTPAuthenticationError:
        pass
    else:
        raise Failure("submission accepted the token for another user")
    smtp.close()


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    imap_addr, submit_addr, user, token = sys.argv[1:]
    try:
        check_imap(imap_addr, user, token)
        check_submission(submit_addr, user, token)
    except Failure as e:
        print("FAIL:", e, file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
