"""The tests' SMTP server: aiosmtpd's Maildir handler, plus scripted refusals chosen by the recipient.

Run as `python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c mingus_test_smtp.Handler MAILDIR` with this
folder on PYTHONPATH. Every message is delivered into MAILDIR (new/), like aiosmtpd.handlers.Mailbox,
except for recipients whose local part starts with:

- ``reject-``     -> ``550 5.1.1 <addr>: Recipient address rejected: User unknown`` (permanent)
- ``tempfail-``   -> ``451 4.3.0 <addr>: Temporary local problem, try again later`` (transient)

This is a real SMTP conversation: the refusals are the server's replies to RCPT TO.
"""

from aiosmtpd.handlers import Mailbox


class Handler(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject-"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("tempfail-"):
            return f"451 4.3.0 <{address}>: Temporary local problem, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
