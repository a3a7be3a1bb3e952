"""botocore as an unmodified program in a container uses it: no endpoint configured (so
http://169.254.169.254/), botocore's own timeouts and attempts (1 s, 1 attempt), the default
credential chain and the IMDS region provider. Prints one JSON object for the Rust test."""
import json
import time

import botocore.session
import botocore.utils as u

session = botocore.session.get_session()
fetcher = u.InstanceMetadataFetcher()
started = time.monotonic()
token = fetcher._fetch_metadata_token()
out = {"token": token is not None, "token_seconds": round(time.monotonic() - started, 2)}
try:
    out["instance_id"] = fetcher._get_request("/latest/meta-data/instance-id", None, token).text
except Exception as e:  # botocore's own error when every attempt failed (401 without a token)
    out["instance_id_error"] = type(e).__name__
creds = session.get_credentials()
out["credentials"] = None if creds is None else creds.method
out["region"] = u.IMDSRegionProvider(session).provide()
print(json.dumps(out))
