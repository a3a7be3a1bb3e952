"""cloud-init's Ec2 datasource crawl as a peer: its own version probe
(DataSourceEc2.get_metadata_api_version) and its crawler (get_instance_metadata,
get_instance_userdata), pointed at the daemon on loopback. Prints JSON.

usage: cloud_init_ec2.py URL MODE      MODE: v1 (no token) | v2 (a token on every request)
"""
import json
import sys
import types
import urllib.request

from cloudinit import version as ci_version
from cloudinit.sources import DataSourceEc2
from cloudinit.sources.helpers import ec2

url, mode = sys.argv[1], sys.argv[2]
headers = {}
if mode == "v2":
    # cloud-init asks the token the same way (PUT, TTL 21600); the token is not what is tested.
    req = urllib.request.Request(
        url + "/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
    )
    headers["X-aws-ec2-metadata-token"] = urllib.request.urlopen(req).read().decode()

cls = DataSourceEc2.DataSourceEc2
probe = types.SimpleNamespace(
    metadata_address=url,
    extended_metadata_versions=cls.extended_metadata_versions,
    min_metadata_version=cls.min_metadata_version,
    _get_headers=lambda *a, **k: dict(headers),
)
chosen = cls.get_metadata_api_version(probe)
out = {"cloud_init": ci_version.version_string(), "chosen": chosen, "trees": {}}
for api in (cls.min_metadata_version, chosen):
    md = ec2.get_instance_metadata(
        api_version=api, metadata_address=url, headers_cb=lambda *a, **k: dict(headers), retries=0
    )
    ud = ec2.get_instance_userdata(
        api_version=api, metadata_address=url, headers_cb=lambda *a, **k: dict(headers), retries=0
    )
    out["trees"][api] = {
        "meta-data": md,
        "user-data": ud.decode() if isinstance(ud, bytes) else ud,
    }
print(json.dumps(out, default=lambda o: o.decode() if isinstance(o, bytes) else str(o)))
