#!/usr/bin/env python3
"""Send mail through egret's submission port with Python's smtplib.

usage: submit.py SUBMIT_HOST:PORT USER PASSWORD FROM REMOTE_RCPT LOCAL_RCPT

Over STARTTLS (certificate not verified: the node's is self-signed) it
signs in with LOGIN and sends one message to REMOTE_RCPT and LOCAL_RCPT,
then checks, exiting 1 with the reason on the first failure:

  * before STARTTLS on a loopback connection AUTH may be offered, but a
    send without signing in is refused with 530;
  * sending as an address that is not the user's is refused with 553;
  * the message is accepted (250) for both recipients.

It prints the Message-ID it sent, for the caller to look for.
Standard library only, so it runs wherever python3 does.
"""

import smtplib
import ssl
import sys

TIMEOUT = 60.0


class Failure(Exception):
    """A check failed; the message says which and why."""


def connect(addr):
    host, port = addr.rsplit(":", 1)
    s = smtplib.SMTP(host, int(port), timeout=TIMEOUT)
    s.ehlo("client.test")
    return s


def main(argv):
    addr, user, password, sender, remote, local = argv[1:7]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    s = connect(addr)
    try:
        s.sendmail(sender, [remote], b"Subject: x\r\n\r\nx\r\n")
        raise Failure("a send without signing in was accepted")
    except smtplib.SMTPSenderRefused as e:
        if e.smtp_code != 530:
            raise Failure(f"send without signing in: {e.smtp_code}, want 530")
    s.quit()

    s = connect(addr)
    s.starttls(context=ctx)
    s.ehlo("client.test")
    s.login(user, password)
    try:
        s.sendmail("someone.else@bank.test", [remote], b"Subject: x\r\n\r\nx\r\n")
        raise Failure("a send as another address was accepted")
    except smtplib.SMTPSenderRefused as e:
        if e.smtp_code != 553:
            raise Failure(f"send as another address: {e.smtp_code}, want 553")
    s.rset()

    msgid = "<submit-roundtrip@client.test>"
    body = (
        f"From: Sender <{sender}>\r\n"
        f"To: {remote}, {local}\r\n"
        "Subject: roster via submission\r\n"
        f"Message-ID: {msgid}\r\n"
        "\r\n"
        "Sent with smtplib over STARTTLS.\r\n"
    ).encode()
    refused = s.sendmail(sender, [remote, local], body)
    if refused:
        raise Failure(f"recipients refused: {refused}")
    s.quit()
    print(msgid)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Failure as f:
        print(f"FAIL: {f}", file=sys.stderr)
        sys.exit(1)
