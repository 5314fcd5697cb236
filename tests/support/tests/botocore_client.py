#!/usr/bin/env python3
"""botocore as an independent SigV4 client of the fake AWS, driven by the Rust tests.

Usage: botocore_client.py SERVICE OPERATION PARAMS_JSON

Environment: ENDPOINT_URL and REGION (passed to the client as endpoint_url and region_name),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN, optional MAX_ATTEMPTS
(standard retry mode, default 1: no retries).

Prints one JSON object: {"ok": RESPONSE} (without ResponseMetadata),
{"error": {"Code", "Message", "HTTPStatusCode", ...}} or {"exception": NAME, "message": TEXT}.
"""

import json
import os
import sys

import botocore.session
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def main():
    service, operation, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    attempts = int(os.environ.get("MAX_ATTEMPTS", "1"))
    client = botocore.session.get_session().create_client(
        service,
        region_name=os.environ["REGION"],
        endpoint_url=os.environ["ENDPOINT_URL"],
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )
    try:
        response = getattr(client, xform_name(operation))(**params)
    except ClientError as err:
        error = dict(err.response.get("Error", {}))
        error["HTTPStatusCode"] = err.response["ResponseMetadata"]["HTTPStatusCode"]
        out = {"error": error}
    except BotoCoreError as err:
        out = {"exception": type(err).__name__, "message": str(err)}
    else:
        response.pop("ResponseMetadata", None)
        out = {"ok": response}
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
