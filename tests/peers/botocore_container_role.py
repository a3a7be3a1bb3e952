"""A peer of the VM tier (tests/vagrant/workloads.sh): botocore's default credential chain
(as boto3 and the AWS CLI run it, unmodified) resolving credentials with nothing but the
environment it was started with, as a program in an ECS task or an EKS pod does
(`fake-metadata ctl task env` / `ctl pod env`): its container provider, method
"container-role". Prints one JSON object; exits 1 when the chain found nothing. Never the key
itself: its first four characters and a SHA-256 fingerprint."""
import hashlib
import json
import sys
from datetime import timezone

import botocore
import botocore.session

out = {"peer": "botocore", "sdk": botocore.__version__}
try:
    creds = botocore.session.get_session().get_credentials()
    if creds is None:
        out["error"] = "no credentials"
    else:
        frozen = creds.get_frozen_credentials()
        out["provider"] = creds.method
        out["key_prefix"] = frozen.access_key[:4]
        out["key_sha256"] = hashlib.sha256(frozen.access_key.encode()).hexdigest()[:16]
        out["secret"] = bool(frozen.secret_key)
        out["token"] = bool(frozen.token)
        expiry = getattr(creds, "_expiry_time", None)  # RefreshableCredentials keep it here
        out["expiry"] = expiry.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if expiry else None
        out["account_id"] = getattr(frozen, "account_id", None)
except Exception as e:  # botocore's own error, as the CLI would print it
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
sys.exit(1 if "error" in out else 0)
