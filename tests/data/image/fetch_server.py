"""Tiny HTTP server for tests/test_image_fetch.c (loopback only).

usage: fetch_server.py PORTFILE DIR   -- binds 127.0.0.1:0, writes the port to
PORTFILE, serves DIR's files plus these routes:
  /big?len=N[&nolen=1]   N bytes (default 5 MiB), with or without Content-Length
  /slow?s=S              sleeps S seconds before answering
  /redirect?to=URL       302 to URL
  /loop                  302 to /loop forever
  /missing               404
"""
import http.server
import os
import sys
import time
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body=b"", headers=None, length=True):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/big":
            n = int(q.get("len", 5 << 20))
            self.send(200, b"\0" * n, {"Content-Type": "application/octet-stream"},
                      length="nolen" not in q)
        elif u.path == "/slow":
            time.sleep(float(q.get("s", "5")))
            self.send(200, b"late")
        elif u.path == "/redirect":
            self.send(302, b"", {"Location": q["to"]})
        elif u.path == "/loop":
            self.send(302, b"", {"Location": "/loop"})
        else:
            p = os.path.join(sys.argv[2], os.path.basename(u.path))
            if u.path != "/" and os.path.isfile(p):
                with open(p, "rb") as f:
                    self.send(200, f.read(), {"Content-Type": "image/png"})
            else:
                self.send(404, b"not found")


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
