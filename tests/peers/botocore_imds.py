"""botocore's own IMDS code against a fake-metadata server, the way the AWS CLI and boto3
use it: the endpoint comes from AWS_EC2_METADATA_SERVICE_ENDPOINT through a session, the
token flow and retries are botocore's. Prints one JSON object for the Rust test to check."""
import json
import sys

import botocore.session
import botocore.utils as u

session = botocore.session.get_session()
config = {
    "ec2_metadata_service_endpoint": session.get_config_variable("ec2_metadata_service_endpoint"),
    "ec2_metadata_service_endpoint_mode": session.get_config_variable("ec2_metadata_service_endpoint_mode"),
}
fetcher = u.IMDSFetcher(timeout=2, num_attempts=1, config=config)
token = fetcher._fetch_metadata_token()
out = {"token": token is not None}
for key, path in [
    ("instance_id", "/latest/meta-data/instance-id"),
    ("listing", "/latest/meta-data/placement/"),
    ("zone", "/latest/meta-data/placement/availability-zone/"),
]:
    resp = fetcher._get_request(path, None, token)
    out[key] = resp.text
out["region"] = u.IMDSRegionProvider(session).provide()
if len(sys.argv) > 1 and sys.argv[1] == "credentials":
    creds = u.InstanceMetadataFetcher(timeout=2, num_attempts=1, config=config).retrieve_iam_role_credentials()
    out["credentials"] = {k: creds.get(k) for k in ("role_name", "access_key", "expiry_time")}
    out["has_secret"] = bool(creds.get("secret_key")) and bool(creds.get("token"))
print(json.dumps(out))
