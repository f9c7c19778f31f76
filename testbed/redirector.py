"""A stand-in for a standby controller of a cluster: an HTTP server on 127.0.0.1 that answers
every request with a redirect (status CODE) to the same path on TARGET.

    python -m testbed.redirector TARGET CODE      # prints its port, serves until stopped

A process of its own: in a pytest process that has imported Ryu (eventlet.wsgi), the name
``http.server`` is eventlet's green copy, whose server threads never run there.
"""
import http.server
import sys


def serve(target, code):
    class Redirect(http.server.BaseHTTPRequestHandler):
        def _redirect(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))  # no reset on close
            self.send_response(code)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_DELETE = _redirect

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
