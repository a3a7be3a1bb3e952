"""botocore's credential chain as the AWS CLI and boto3 run it on an instance: no keys in the
environment or in files, so the instance role's credentials come from IMDS, with botocore's
own timeout, attempts and token flow (set the way users set them:
AWS_METADATA_SERVICE_TIMEOUT, AWS_METADATA_SERVICE_NUM_ATTEMPTS). Prints one JSON object:
whether credentials came, the role's key id prefix (never a secret), how long it took, and the
error botocore raised, if any."""
import json
import logging
import time

import botocore.session

# What botocore says about IMDS while it tries (its retries and fallbacks), for the report.
log = []


class Collect(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        if "metadata" in msg.lower() or "imds" in msg.lower():
            log.append(msg)


handler = Collect()
logging.getLogger("botocore").addHandler(handler)
logging.getLogger("botocore").setLevel(logging.DEBUG)

session = botocore.session.get_session()
start = time.monotonic()
out = {"credentials": False, "method": None, "error": None}
try:
    creds = session.get_credentials()
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        out["credentials"] = bool(frozen.access_key and frozen.secret_key and frozen.token)
        out["key_prefix"] = frozen.access_key[:4]
        out["method"] = creds.method
except Exception as e:  # botocore's own error, as the CLI would print it
    out["error"] = f"{type(e).__name__}: {e}"
out["seconds"] = round(time.monotonic() - start, 2)
out["log"] = log[-6:]
print(json.dumps(out))
