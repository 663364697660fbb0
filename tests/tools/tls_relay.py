"""A submission server for the TLS and AUTH tests: aiosmtpd (not ours) with STARTTLS or implicit
TLS, AUTH PLAIN/LOGIN against one user and password, and every accepted message written to a
directory as JSON (envelope, authenticated user, whether the session was encrypted, the data).
Failed AUTH attempts are counted in the file `auth-failures`, one line each.

    python3 tls_relay.py --port P --mode starttls|implicit --cert C --key K \
        [--user U --password W] --out DIR

Without --user it offers no AUTH mechanism at all.

Prints "ready" once it accepts connections; stops when stdin closes or on SIGTERM.
"""

import argparse
import json
import os
import ssl
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["starttls", "implicit"], required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(a.cert, a.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        ):
            return AuthResult(success=True, auth_data=a.user)
        with open(os.path.join(a.out, "auth-failures"), "a") as f:
            f.write(mechanism + "\n")
        return AuthResult(success=False, handled=False)

    class Handler:
        count = 0

        async def handle_DATA(self, server, session, envelope):
            Handler.count += 1
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "user": session.auth_data,
                # Set after STARTTLS and for implicit TLS alike.
                "encrypted": server.transport.get_extra_info("ssl_object") is not None,
                "data": envelope.content.decode("utf-8", "replace"),
            }
            name = os.path.join(a.out, "message-%04d.json" % Handler.count)
            with open(name + ".tmp", "w") as f:
                json.dump(record, f)
            os.rename(name + ".tmp", name)
            return "250 OK"

    common = dict(hostname="127.0.0.1", port=a.port, server_hostname="localhost")
    if a.user is not None:
        common.update(authenticator=authenticator, auth_required=True)
    else:
        # aiosmtpd offers its own LOGIN and PLAIN unless told not to.
        common.update(auth_exclude_mechanism=["LOGIN", "PLAIN"])
    if a.mode == "starttls":
        controller = Controller(
            Handler(),
            tls_context=context,
            require_starttls=True,
            auth_require_tls=a.user is not None,
            **common,
        )
    else:
        # aiosmtpd warns of AUTH without STARTTLS; over implicit TLS the session is encrypted
        # from the first byte, which it does not count.
        warnings.simplefilter("ignore", UserWarning)
        controller = Controller(
            Handler(), ssl_context=context, auth_require_tls=False, **common
        )
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    controller.stop()


if __name__ == "__main__":
    main()
