"""A real SMTP server for the e2e tests: aiosmtpd's Controller on 127.0.0.1:<port>.

Each message it accepts is written to <dir> as one JSON file (written under a temporary name and
renamed, so a reader never sees half a file): the envelope recipients, the Subject, the decoded
plain-text body and the raw message as received. Prints "ready" once listening; stops when its
stdin closes (the test drops it) or on SIGTERM.

Usage: smtp_sink.py PORT DIR
"""

import email
import email.policy
import itertools
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.seq = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        record = {
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_from": envelope.mail_from,
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "body": part.get_content() if part is not None else "",
            "raw": raw.decode("utf-8", "replace"),
        }
        # Names sort by arrival, across restarts too.
        name = "%020d-%05d" % (time.time_ns(), next(self.seq))
        tmp = os.path.join(self.folder, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.folder, name + ".json"))
        return "250 OK"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
