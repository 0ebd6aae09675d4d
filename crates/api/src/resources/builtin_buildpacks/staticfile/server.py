"""Hearth's staticfile_buildpack web server: serves the app's files with the Staticfile
options Cloud Foundry's staticfile buildpack has (root, pushstate, directory listing,
gzip of precompressed files), on $PORT."""
import gzip, http.server, os, posixpath, socketserver, sys, urllib.parse

options = {}
for line in open(os.path.join(os.path.dirname(__file__), "options")):
    key, _, value = line.partition(":")
    options[key.strip()] = value.strip()
root = os.path.realpath(os.path.join(os.getcwd(), options.get("root") or "."))
pushstate = options.get("pushstate") == "enabled"
listing = options.get("directory") == "visible"


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=root, **kwargs)

    def translate_path(self, path):
        path = posixpath.normpath(urllib.parse.unquote(path.split("?", 1)[0].split("#", 1)[0]))
        full = os.path.realpath(os.path.join(root, path.lstrip("/")))
        return full if full == root or full.startswith(root + os.sep) else os.path.join(root, "\0")

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            index = os.path.join(path, "index.html")
            if os.path.isfile(index):
                path = index
            elif not listing:
                return self.missing()
            else:
                return super().send_head()
        if not os.path.isfile(path):
            return self.missing()
        encoded = path + ".gz"
        if "gzip" in self.headers.get("Accept-Encoding", "") and os.path.isfile(encoded):
            return self.file(encoded, self.guess_type(path), gzip=True)
        return self.file(path, self.guess_type(path))

    def missing(self):
        index = os.path.join(root, "index.html")
        if pushstate and os.path.isfile(index):
            return self.file(index, "text/html")
        self.send_error(404, "File not found")
        return None

    def file(self, path, ctype, gzip=False):
        f = open(path, "rb")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
        if gzip:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        return f

    def log_message(self, fmt, *args):
        sys.stdout.write("%s - %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        # HTTPServer's own server_bind looks up the host's full name: a DNS query that can
        # take seconds in a container and is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


print("Serving %s on port %s" % (root, os.environ.get("PORT", "8080")), flush=True)
Server(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
