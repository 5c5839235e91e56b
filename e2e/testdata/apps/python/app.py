"""berth's sample Python app: "hello from python" on /, the value of an
environment variable on /env/NAME, on $PORT. Standard library only."""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/env/"):
            name = unquote(self.path[len("/env/"):])
            if name not in os.environ:
                self.reply(404, name + " is not set\n")
            else:
                self.reply(200, os.environ[name])
            return
        self.reply(200, "hello from python\n")

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main():
    port = os.environ.get("PORT")
    if not port:
        sys.exit("PORT is not set")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("", int(port)), Handler)
    print("listening on :" + port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
