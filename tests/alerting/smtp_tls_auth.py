"""An aiosmtpd receiver for tests/it_alerts/email_tls.rs: implicit TLS (SMTPS, RFC 8314) or STARTTLS
(RFC 3207) with the certificate it is given, and optionally AUTH required (RFC 4954) for one
user whose password comes from an environment variable (never from the command line).

Every delivered message is written to a Maildir with the headers aiosmtpd's Mailbox handler adds
(X-Peer, X-MailFrom, X-RcptTo) plus what the session really was, taken from the connection
itself rather than from anything the client said:

  X-Test-Transport  implicit-tls | starttls | plain
  X-Test-TLS        the negotiated protocol (TLSv1.3, ...) or none
  X-Test-Auth       the login that authenticated, or none

Each AUTH attempt and each delivery is appended to the events file as one JSON line (the login
and whether it succeeded; never the password). A line {"event": "ready"} says the server is
accepting connections.

aiosmtpd only counts STARTTLS as TLS for `auth_require_tls`: on an implicit-TLS listener the
whole connection is TLS already, so the setting is turned off there (AUTH is still refused
before TLS on the STARTTLS listener).

usage: smtp_tls_auth.py --mode smtps|starttls --port N --cert PEM --key PEM --maildir DIR
                        --events FILE [--user NAME --password-env VAR]
"""

import argparse
import json
import mailbox
import os
import ssl
import threading
import time
from email import message_from_bytes

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["smtps", "starttls"], required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--user")
    p.add_argument("--password-env")
    a = p.parse_args()

    lock = threading.Lock()

    def event(**fields):
        with lock, open(a.events, "a", encoding="utf-8") as f:
            f.write(json.dumps(fields) + "\n")

    def tls_of(server):
        obj = server.transport.get_extra_info("ssl_object") if server.transport else None
        return obj.version() if obj else None

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    password = os.environ[a.password_env].encode() if a.password_env else None

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            event(event="auth", mechanism=mechanism, login=None, success=False, tls=tls_of(server))
            return AuthResult(success=False, handled=False)
        ok = auth_data.login == a.user.encode() and auth_data.password == password
        event(event="auth", mechanism=mechanism, login=auth_data.login.decode("utf-8", "replace"), success=ok, tls=tls_of(server))
        # handled=False: aiosmtpd answers "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    box = mailbox.Maildir(a.maildir, create=True)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            tls = tls_of(server)
            # session.ssl is set by aiosmtpd only when STARTTLS upgraded the connection.
            transport = "starttls" if session.ssl is not None else ("implicit-tls" if tls else "plain")
            login = session.login_data.decode("utf-8", "replace") if session.authenticated and session.login_data else "none"
            msg = message_from_bytes(envelope.content)
            msg["X-Peer"] = str(session.peer)
            msg["X-MailFrom"] = envelope.mail_from
            msg["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
            msg["X-Test-Transport"] = transport
            msg["X-Test-TLS"] = tls or "none"
            msg["X-Test-Auth"] = login
            with lock:
                box.add(msg)
            event(event="delivered", transport=transport, tls=tls, login=login, rcpt=envelope.rcpt_tos)
            return "250 Message accepted for delivery"

    kwargs = {}
    if a.user:
        kwargs.update(auth_required=True, authenticator=authenticator)
    if a.mode == "smtps":
        kwargs.update(ssl_context=ctx, auth_require_tls=False)
    else:
        kwargs.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
    controller = Controller(Handler(), hostname="127.0.0.1", port=a.port, **kwargs)
    controller.start()
    event(event="ready", port=a.port, mode=a.mode)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
