"""An SMTP server with AUTH and TLS for tickler's tests, on 127.0.0.1.

usage: auth_smtpd.py PORT CERT KEY USER PASSWORD starttls|implicit|plain
`plain` offers AUTH without any TLS (a server a password must never be sent to).
Prints "ready" once it listens, "auth" for each login attempt and "message" for each
message it accepts; stops when its standard input closes.
"""
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, user, password, mode = sys.argv[1:7]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        print("message", flush=True)
        return "250 2.0.0 accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    print("auth", flush=True)
    good = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=good, handled=False)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
common = dict(hostname="127.0.0.1", port=int(port), authenticator=authenticator)
if mode == "starttls":
    controller = Controller(Handler(), tls_context=context, require_starttls=True, auth_require_tls=True, **common)
elif mode == "plain":
    controller = Controller(Handler(), auth_require_tls=False, **common)
else:
    controller = Controller(Handler(), ssl_context=context, auth_require_tls=False, **common)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
