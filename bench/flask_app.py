"""The benchmark's Python baseline: the same paths as fake-metadata's hot path (a leaf, the
token PUT, a GET with a token) under Flask's development server, the way a quick IMDS mock is
often written. Usage: python3 bench/flask_app.py PORT"""

import secrets
import sys

from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler

app = Flask(__name__)
INSTANCE_ID = "i-0123456789abcdef0"


@app.route("/latest/meta-data/instance-id", methods=["GET", "HEAD"])
def instance_id():
    return Response(INSTANCE_ID, mimetype="text/plain")


@app.route("/latest/api/token", methods=["PUT"])
def token():
    ttl = request.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
    if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
        return Response(status=400)
    resp = Response(secrets.token_urlsafe(42), mimetype="text/plain")
    resp.headers["X-aws-ec2-metadata-token-ttl-seconds"] = ttl
    return resp


if __name__ == "__main__":
    # HTTP/1.1 so that keep-alive clients keep their connection, as with the other servers.
    WSGIRequestHandler.protocol_version = "HTTP/1.1"
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
